import DistillCore
import DistillNN
import Foundation
import FuzzSupport

/// libFuzzer entry for `UNet2DConfig.decode`, the reader of diffusers' `config.json`.
///
/// An accepted config must validate, and writing it back as diffusers keys and reading that
/// again must give the same config.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  let bytes = data.map { Data(bytes: $0, count: count) } ?? Data()
  let config: UNet2DConfig
  do {
    config = try UNet2DConfig.decode(bytes, source: "config.json")
  } catch is DistillError {
    return 0
  } catch {
    fatalError("not a DistillError: \(error)")
  }
  try! config.validate(source: "config.json")
  _ = config.timeEmbedDimension
  _ = try! config.parameterCount()
  let written = try! JSONEncoder().encode(JSONValue.object(config.diffusersJSON()))
  let reread = try! UNet2DConfig.decode(written, source: "rewritten config.json")
  precondition(reread == config, "config changed when written and read back")
  return 0
}

@main enum FuzzUNetConfig {
  static func main() { runFuzzer(fuzzOneInput) }
}
