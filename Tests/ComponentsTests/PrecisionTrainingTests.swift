import BuiltInComponents
import DistillCore
import DistillPipeline
import Foundation
import Testing

/// `training.precision`: validation, and training in bf16 (products and convolutions on
/// bfloat16 operands, everything stored in float32).
@Suite struct PrecisionTrainingTests {
  func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

  @Test func anUnknownPrecisionIsRefusedNamingTheKey() {
    var json = toyManifestJSON(output: "/tmp/unused")
    try! ManifestOverride(parsing: "training.precision=fp16").apply(to: &json)
    #expect {
      try Manifest.decode(
        json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: .standard())
    } throws: { error in
      guard let error = error as? ManifestError, error.problems.count == 1 else { return false }
      return error.problems[0].path == "training.precision"
        && error.problems[0].message.contains("\"bf16\"")
    }
  }

  @Test func bf16WithoutTheInstructionsIsRefusedAtValidation() throws {
    var json = toyManifestJSON(output: "/tmp/unused")
    try ManifestOverride(parsing: "training.precision=bf16").apply(to: &json)
    #expect {
      try Manifest.decode(
        json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: .standard(),
        bf16Supported: false)
    } throws: { error in
      guard let error = error as? ManifestError, error.problems.count == 1 else { return false }
      return error.problems[0].path == "training.precision"
        && error.problems[0].message.contains("AVX512-BF16")
    }
    let manifest = try Manifest.decode(
      json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: .standard(),
      bf16Supported: true)
    #expect(manifest.training.precision == .bf16)
  }

  /// `DISTILL_GEMM=blas` leaves products to BLAS, which has no bf16: the CLI exits 2 naming the key.
  @Test func theCommandLineExitsTwoNamingTrainingPrecision() throws {
    let folder = temporaryFolder()
    var json = toyManifestJSON(output: folder + "/run")
    try ManifestOverride(parsing: "training.precision=bf16").apply(to: &json)
    let path = writeManifest(json, in: folder)
    var environment = ProcessInfo.processInfo.environment
    environment["DISTILL_GEMM"] = "blas"
    let result = try runPipeline(["validate", path], environment: environment)
    #expect(result.status == 2)
    #expect(
      result.error.contains("training.precision") && result.error.contains("AVX512-BF16"),
      "\(result.error)")
  }

  @Test(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
  func aResumedBF16RunEndsWithTheSameWeightsBitForBit() throws {
    let base = temporaryFolder()
    let bf16 = ["training.precision=bf16"]
    try train(toyManifestJSON(steps: 30, output: base + "/straight"), overrides: bf16)
    try train(toyManifestJSON(steps: 10, output: base + "/resumed"), overrides: bf16)
    try train(toyManifestJSON(steps: 30, output: base + "/resumed"), mode: .resume, overrides: bf16)
    try train(toyManifestJSON(steps: 30, output: base + "/fp32"))
    let straight = bytes(base + "/straight/checkpoints/step-00000030/state.safetensors")
    let resumed = bytes(base + "/resumed/checkpoints/step-00000030/state.safetensors")
    #expect(straight != nil && straight == resumed, "every network, optimizer state and EMA agree")
    #expect(
      bytes(base + "/straight/generator.safetensors")
        == bytes(base + "/resumed/generator.safetensors"))
    // The precision took effect: float32 training ends elsewhere, though close by.
    let a = try SafetensorsFile.read(contentsOf: base + "/straight/generator.safetensors").tensors()
    let b = try SafetensorsFile.read(contentsOf: base + "/fp32/generator.safetensors").tensors()
    var largest: Float = 0
    for (name, tensor) in a {
      #expect(tensor.shape == b[name]?.shape)
      for (x, y) in zip(tensor.scalars, b[name]?.scalars ?? []) {
        largest = max(largest, abs(x - y))
      }
    }
    #expect(
      !a.isEmpty && largest > 0 && largest < 0.05,
      "largest difference from float32 training: \(largest)")
  }
}
