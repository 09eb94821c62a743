import DistillNN
import Foundation
import Testing

@testable import DistillDiffusion

/// Sizes and values in `denoiser.json` and scheduler configs are bounded before anything of
/// that size is allocated, and weights holding NaN or infinity are refused (docs/reliability.md).
@Suite struct DenoiserFolderBoundsTests {
  /// A folder holding a saved MLP denoiser (inputSize 2, width 8, depth 1).
  func withSavedMLP(_ body: (_ folder: String, _ json: String) throws -> Void) throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("distillery-bounds-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var rng = RandomGenerator(seed: 0)
    try MLPDenoiser(config: MLPDenoiserConfig(inputSize: 2, width: 8, depth: 1), using: &rng).save(folder: folder)
    let json = try String(contentsOfFile: folder + "/denoiser.json", encoding: .utf8)
    try body(folder, json)
  }

  func expectLoadFails(_ folder: String, containing parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    do {
      _ = try DenoiserFolder.load(folder: folder)
      Issue.record("loaded", sourceLocation: sourceLocation)
    } catch {
      #expect(error is DistillError, "\(error)", sourceLocation: sourceLocation)
      for part in parts { #expect("\(error)".contains(part), "\"\(part)\" not in: \(error)", sourceLocation: sourceLocation) }
    }
  }

  @Test func anMLPLargerThanItsWeightsIsRefusedBeforeBuilding() throws {
    try withSavedMLP { folder, json in
      // A width of 1e11 is over the limit; 5000 fits it but not the weights file of 170 parameters.
      try json.replacingOccurrences(of: "\"width\" : 8", with: "\"width\" : 100000000000")
        .write(toFile: folder + "/denoiser.json", atomically: true, encoding: .utf8)
      expectLoadFails(folder, containing: ["network: width", "an MLP of at most 1000000000 parameters"])
      try json.replacingOccurrences(of: "\"width\" : 8", with: "\"width\" : 5000")
        .write(toFile: folder + "/denoiser.json", atomically: true, encoding: .utf8)
      expectLoadFails(folder, containing: ["weights.safetensors", "too small for the 105002 parameters"])
    }
  }

  @Test func mlpParameterCountMatchesTheBuiltNetwork() throws {
    for config in [
      MLPDenoiserConfig(inputSize: 2, width: 8, depth: 1), MLPDenoiserConfig(inputSize: 3, width: 5, depth: 4, outputSize: 7, timeEmbedding: 6),
    ] {
      var rng = RandomGenerator(seed: 0)
      #expect(try config.parameterCount() == MLPDenoiserNetwork(config: config, using: &rng).parameterCount)
    }
  }

  @Test func weightsHoldingNaNAreRefusedNamingTheTensor() throws {
    try withSavedMLP { folder, _ in
      let path = folder + "/weights.safetensors"
      var weights = try SafetensorsFile.read(contentsOf: path).tensors()
      var bias = weights["mlp.0.bias"]!.scalars
      bias[5] = -.infinity
      weights["mlp.0.bias"] = Tensor(shape: [bias.count], scalars: bias)
      try SafetensorsFile.write(weights, to: path)
      expectLoadFails(folder, containing: [path, "tensor 'mlp.0.bias' holds -inf at element 5"])
    }
  }

  @Test func absurdTrainStepsAreRefused() throws {
    try withSavedMLP { folder, json in
      try json.replacingOccurrences(of: "\"trainSteps\" : 1000", with: "\"trainSteps\" : 100000000000000")
        .write(toFile: folder + "/denoiser.json", atomically: true, encoding: .utf8)
      // The error names the key as denoiser.json spells it (it named diffusers' before).
      expectLoadFails(folder, containing: ["schedule: trainSteps: expected an integer in 2...100000"])
    }
    #expect {
      _ = try ScheduleConfig.decodeDiffusers(Data(#"{"num_train_timesteps": 1e12}"#.utf8), source: "scheduler_config.json")
    } throws: { "\($0)".contains("scheduler_config.json: num_train_timesteps: expected an integer in 2...100000") }
  }

  @Test func anOverflowingSampleShapeThrowsInsteadOfTrapping() throws {
    // [2^40, 2^40] multiplied to an Int overflow, which trapped.
    #expect(throws: DistillError.self) {
      _ = try GaussianMixtureDenoiser(means: [[0, 0]], std: 1, sampleShape: [1 << 40, 1 << 40])
    }
    #expect(throws: DistillError.self) {
      _ = try GaussianMixtureDenoiser(means: [[0, 0]], std: 1, sampleShape: [1 << 62, 4, 0])
    }
    let ok = try GaussianMixtureDenoiser(means: [[0, 0]], std: 1, sampleShape: [1, 2, 1])
    #expect(ok.sampleShape == [1, 2, 1])
  }
}
