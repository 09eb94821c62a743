import DistillCore
import FuzzSupport

/// libFuzzer entry for `SafetensorsFile.read(contentsOf:)`: any bytes must either be refused
/// with a `DistillError` or give a file whose every tensor can be read and checked.
let scratch = ScratchFile(name: "input.safetensors")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  scratch.write(UnsafeRawBufferPointer(start: data, count: count))
  let file: SafetensorsFile
  do {
    file = try SafetensorsFile.read(contentsOf: scratch.path)
  } catch is DistillError {
    return 0
  } catch {
    fatalError("not a DistillError: \(error)")
  }
  for key in file.keys {
    let info = file.info(key)!
    let byteCount = try! file.withUnsafeBytes(of: key) { $0.count }
    precondition(byteCount == info.dataOffsets.count, "tensor '\(key)': \(byteCount) bytes for \(info.dataOffsets)")
    precondition(byteCount <= count, "tensor '\(key)' is larger than the file")
    guard info.dtype.isConvertibleToFloat else { continue }
    let tensor = try! file.tensor(key)
    precondition(tensor.shape == info.shape && tensor.count == info.elementCount)
  }
  // The load-time finiteness check must agree with a plain scan of the converted values.
  for key in file.keys where file.info(key)!.dtype.isConvertibleToFloat {
    let hasNonFinite = try! file.tensor(key).withUnsafeBufferPointer { $0.contains { !$0.isFinite } }
    let found = try! file.firstNonFinite(among: [key])
    precondition((found != nil) == hasNonFinite, "tensor '\(key)': finiteness check disagrees with a scan")
  }
  return 0
}

@main enum FuzzSafetensors {
  static func main() { runFuzzer(fuzzOneInput) }
}
