import DistillCore
import DistillDiffusion
import Foundation
import FuzzSupport

/// libFuzzer entry for `DenoiserFolder.load(folder:)` with a fuzzed `denoiser.json`.
///
/// The folder also holds the weights of a small MLP (inputSize 2, width 8, depth 1), so a
/// document that names that network loads it; any other network must be refused before it is
/// allocated (its size checked against the weights file).
let scratch: ScratchFile = {
  let file = ScratchFile(name: DenoiserFolder.configFileName)
  var rng = RandomGenerator(seed: 0)
  let seed = MLPDenoiser(config: MLPDenoiserConfig(inputSize: 2, width: 8, depth: 1), using: &rng)
  try! seed.save(folder: file.folder)
  return file
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  scratch.write(UnsafeRawBufferPointer(start: data, count: count))
  let denoiser: any SavableDenoiser
  do {
    denoiser = try DenoiserFolder.load(folder: scratch.folder)
  } catch is DistillError {
    return 0
  } catch {
    fatalError("not a DistillError: \(error)")
  }
  let table = denoiser.schedule.alphasCumprod
  precondition(!table.isEmpty && table.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 }, "bad schedule: \(table.prefix(8))")
  return 0
}

@main enum FuzzDenoiserJSON {
  static func main() { runFuzzer(fuzzOneInput) }
}
