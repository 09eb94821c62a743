import Foundation
import DistillTestSupport
import Testing

@testable import DistillNN

/// Fixtures from Fixtures/make_unet_fixtures.py (diffusers 0.42.1), reached by source path.
let unetFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// Every fixture folder (one holding a config.json), sorted.
let unetFixtureNames: [String] = {
  let names = (try? FileManager.default.contentsOfDirectory(atPath: unetFixtures.path)) ?? []
  return names.filter { FileManager.default.fileExists(atPath: unetFixtures.path + "/\($0)/config.json") }.sorted()
}()

/// A fresh temporary folder, removed by the caller.
func temporaryFolder() -> String {
  let path = FileManager.default.temporaryDirectory.appendingPathComponent("distill-unet-\(UUID().uuidString)").path
  try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// The model's output on a fixture's inputs, and diffusers' output for them.
func fixtureOutputs(_ unet: UNet2DModel, fixture: String) throws -> (output: Tensor, expected: Tensor) {
  let io = try SafetensorsFile.read(contentsOf: unetFixtures.path + "/\(fixture)/io.safetensors")
  let sample = try io.tensor("sample")
  let timesteps = try io.tensor("timestep").scalars
  return (withoutGradients { unet(sample, timesteps: timesteps) }, try io.tensor("output"))
}

@Suite struct UNet2DConfigSpaceTests {
  @Test func everyFixtureIsFound() {
    #expect(unetFixtureNames.count == 7, "\(unetFixtureNames)")
  }

  /// `output` = diffusers `UNet2DModel(sample, timestep).sample` with a float timestep tensor
  /// holding one fractional and one integer value.
  @Test(arguments: unetFixtureNames)
  func forwardMatchesDiffusers(fixture: String) throws {
    let unet = try UNet2DModel.load(folder: unetFixtures.path + "/\(fixture)")
    let (output, expected) = try fixtureOutputs(unet, fixture: fixture)
    #expect(output.shape == expected.shape)
    let error = maxAbsDifference(output, expected)
    print("UNet2D parity \(fixture): max abs difference \(error)")
    #expect(error < 1e-4, "\(fixture): \(error)")
  }

  @Test func fixturesExerciseTheKeyMapping() throws {
    let legacy = try SafetensorsFile.read(
      contentsOf: unetFixtures.path + "/legacy-nomid-relu/" + UNet2DModel.weightsFileName)
    #expect(legacy.keys.contains("down_blocks.0.attentions.0.query.weight"))
    #expect(legacy.keys.contains("up_blocks.1.attentions.1.proj_attn.bias"))
    #expect(!legacy.keys.contains { $0.contains("to_q") || $0.contains("to_out") })
    let prefixed = try SafetensorsFile.read(
      contentsOf: unetFixtures.path + "/module-prefix-noattn/" + UNet2DModel.weightsFileName)
    #expect(prefixed.keys.allSatisfy { $0.hasPrefix("module.") })
    let unet = try UNet2DModel.load(folder: unetFixtures.path + "/legacy-nomid-relu")
    #expect(unet.namedParameters().contains { $0.name == "down_blocks.0.attentions.0.to_out.0.weight" })
  }

  @Test(arguments: ["ss-attngroups", "legacy-nomid-relu"])
  func saveThenLoadGivesIdenticalOutputs(fixture: String) throws {
    let unet = try UNet2DModel.load(folder: unetFixtures.path + "/\(fixture)")
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try unet.save(folder: folder)
    let reloaded = try UNet2DModel.load(folder: folder)
    #expect(reloaded.config == unet.config)
    let saved = try SafetensorsFile.read(contentsOf: folder + "/" + UNet2DModel.weightsFileName)
    #expect(saved.keys == unet.namedParameters().map(\.name).sorted())  // canonical names, no legacy keys
    let (before, _) = try fixtureOutputs(unet, fixture: fixture)
    let (after, _) = try fixtureOutputs(reloaded, fixture: fixture)
    #expect(before.scalars == after.scalars)
  }

  @Test func savedConfigKeepsDecimalValuesAsWritten() throws {
    let unet = try UNet2DModel.load(folder: unetFixtures.path + "/ddpm-style")
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try unet.save(folder: folder)
    let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))
    guard case .object(let saved) = try JSONValue.parse(data, source: "config.json") else {
      Issue.record("config.json is not an object")
      return
    }
    // Exactly as diffusers wrote them, not Double(Float(1e-6)) = 9.99999997e-07.
    #expect(saved["norm_eps"] == .number(1e-6))
    #expect(saved["mid_block_scale_factor"] == .number(1.414))
    #expect(saved["freq_shift"] == .number(1))
    #expect(saved["flip_sin_to_cos"] == .bool(false))
    #expect(saved["downsample_padding"] == .number(0))
  }
}

// MARK: - Configuration errors

@Suite struct UNet2DConfigErrorTests {
  /// A valid tiny configuration; each test changes one thing.
  static var base: [String: Any] {
    [
      "_class_name": "UNet2DModel", "_diffusers_version": "0.42.1", "sample_size": 8, "in_channels": 3,
      "out_channels": 3, "block_out_channels": [8, 16], "layers_per_block": 1, "norm_num_groups": 4,
      "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
      "attention_head_dim": 8, "time_embedding_type": "positional", "class_embed_type": NSNull(),
    ]
  }

  static func decode(_ changes: [String: Any], removing: [String] = []) throws -> UNet2DConfig {
    var object = base
    for (key, value) in changes { object[key] = value }
    for key in removing { object[key] = nil }
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return try UNet2DConfig.decode(data, source: "teacher/config.json")
  }

  /// The message of the error `body` throws, or a recorded failure.
  static func message(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> String {
    do {
      try body()
      Issue.record("no error thrown", sourceLocation: sourceLocation)
    } catch let error as DistillError {
      return error.description
    } catch {
      Issue.record("not a DistillError: \(error)", sourceLocation: sourceLocation)
    }
    return ""
  }

  @Test func baseConfigDecodes() throws {
    let config = try Self.decode([:])
    #expect(config.blockOutChannels == [8, 16])
    #expect(config.attentionHeadDimension == 8)
  }

  static var rejected: [(changes: [String: Any], mentions: [String])] {
    [
      (["time_embedding_type": "fourier"], ["time_embedding_type", "\"fourier\""]),
      (["time_embedding_type": "learned"], ["time_embedding_type", "\"learned\""]),
      (["down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"]], ["down_block_types", "CrossAttnDownBlock2D"]),
      (["up_block_types": ["AttnUpBlock2D", "AttnSkipUpBlock2D"]], ["up_block_types", "AttnSkipUpBlock2D"]),
      (["upsample_type": "resnet"], ["upsample_type", "\"resnet\""]),
      (["downsample_type": "resnet"], ["downsample_type", "\"resnet\""]),
      (["class_embed_type": "projection"], ["class_embed_type", "\"projection\""]),
      (["num_class_embeds": -1], ["num_class_embeds", "-1"]),
      (["mid_block_type": "UNetMidBlock2DCrossAttn"], ["mid_block_type", "UNetMidBlock2DCrossAttn"]),
      (["resnet_time_scale_shift": "spatial"], ["resnet_time_scale_shift", "\"spatial\""]),
      (["act_fn": "mish"], ["act_fn", "\"mish\""]),
      (["layers_per_blok": 1], ["layers_per_blok", "did you mean \"layers_per_block\""]),
      (["layers_per_block": "two"], ["layers_per_block", "\"two\"", "an integer"]),
      (["flip_sin_to_cos": 1], ["flip_sin_to_cos", "true or false"]),
      (["norm_num_groups": 3], ["norm_num_groups", "3", "8"]),
      (["attn_norm_num_groups": 3], ["attn_norm_num_groups", "3", "16"]),
      (["attention_head_dim": 3], ["attention_head_dim", "3"]),
      (["attention_head_dim": 32], ["attention_head_dim", "32"]),
      (
        [
          "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"],
          "attention_head_dim": 3,
        ], ["attention_head_dim", "mid-block attention", "3 for 16"]
      ),
      (["down_block_types": ["DownBlock2D"]], ["down_block_types", "one block per entry"]),
      (["downsample_padding": 2], ["downsample_padding", "2"]),
      (["time_embedding_dim": -8], ["time_embedding_dim", "-8"]),
    ]
  }

  @Test(arguments: rejected.indices)
  func unsupportedValuesAreRejectedByKeyAndValue(_ index: Int) {
    let (changes, mentions) = Self.rejected[index]
    let text = Self.message { _ = try Self.decode(changes) }
    #expect(text.hasPrefix("teacher/config.json"), "\(text)")
    for word in mentions { #expect(text.contains(word), "\(changes): \(text)") }
  }

  @Test func attentionHeadDimensionNeedNotDivideChannelsWithoutAttention() throws {
    // No attention anywhere: diffusers builds the model whatever the head size.
    let config = try Self.decode([
      "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"],
      "add_attention": false, "attention_head_dim": 3,
    ])
    #expect(!config.addAttention)
  }

  @Test func zeroTimeEmbeddingDimensionMeansTheDefault() throws {
    // diffusers computes `time_embedding_dim or 4 * block_out_channels[0]`.
    let config = try Self.decode(["time_embedding_dim": 0])
    #expect(config.timeEmbeddingDimension == nil && config.timeEmbedDimension == 32)
    #expect(try Self.decode(["time_embedding_dim": 24]).timeEmbedDimension == 24)
  }

  @Test func malformedJSONNamesTheFile() {
    let text = Self.message {
      _ = try UNet2DConfig.decode(Data("{\"in_channels\": 3,".utf8), source: "teacher/config.json")
    }
    #expect(text.hasPrefix("teacher/config.json"))
    #expect(text.contains("not valid JSON"))
  }

  @Test func nonObjectJSONIsRejected() {
    let text = Self.message { _ = try UNet2DConfig.decode(Data("[1, 2]".utf8), source: "teacher/config.json") }
    #expect(text.contains("a JSON object"))
  }
}

// MARK: - Weight-file errors

@Suite struct UNet2DWeightErrorTests {
  /// Copies a fixture to a temporary folder with its weights changed by `edit`; returns the
  /// loading error's message and the weights path.
  func loadError(_ fixture: String, _ edit: (inout [String: Tensor]) -> Void) throws -> (String, String) {
    let source = unetFixtures.path + "/\(fixture)"
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try FileManager.default.copyItem(atPath: source + "/config.json", toPath: folder + "/config.json")
    var tensors = try SafetensorsFile.read(contentsOf: source + "/" + UNet2DModel.weightsFileName).tensors()
    edit(&tensors)
    let weights = folder + "/" + UNet2DModel.weightsFileName
    try SafetensorsFile.write(tensors, to: weights)
    return (UNet2DConfigErrorTests.message { _ = try UNet2DModel.load(folder: folder) }, weights)
  }

  @Test func wrongShapeNamesFileKeyAndShapes() throws {
    let (text, file) = try loadError("ss-onehead") { $0["conv_in.weight"] = .zeros([8, 3, 1, 1]) }
    #expect(text.hasPrefix(file))
    #expect(text.contains("'conv_in.weight'") && text.contains("[8, 3, 1, 1]") && text.contains("[8, 3, 3, 3]"))
  }

  @Test func missingKeyIsNamed() throws {
    let (text, file) = try loadError("ss-onehead") { $0["mid_block.attentions.0.to_q.bias"] = nil }
    #expect(text.hasPrefix(file))
    #expect(text.contains("'mid_block.attentions.0.to_q.bias'") && text.contains("missing"))
  }

  @Test func extraKeyIsNamed() throws {
    let (text, file) = try loadError("ss-onehead") { $0["mid_block.attentions.0.group_norm.weight"] = .ones([16]) }
    #expect(text.hasPrefix(file))
    #expect(text.contains("'mid_block.attentions.0.group_norm.weight'") && text.contains("unexpected"))
  }

  @Test func legacyKeyIsNamedAsTheFileSpellsIt() throws {
    let (text, file) = try loadError("legacy-nomid-relu") {
      $0["down_blocks.0.attentions.0.query.weight"] = .zeros([9, 8])
    }
    #expect(text.hasPrefix(file))
    #expect(text.contains("'down_blocks.0.attentions.0.query.weight'") && text.contains("[9, 8]"))
  }

  @Test func missingWeightsFileIsNamed() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try FileManager.default.copyItem(
      atPath: unetFixtures.path + "/ss-onehead/config.json", toPath: folder + "/config.json")
    let text = UNet2DConfigErrorTests.message { _ = try UNet2DModel.load(folder: folder) }
    #expect(text.contains(UNet2DModel.weightsFileName))
  }
}

// MARK: - Gradients

@Suite struct UNet2DGradientTests {
  /// A tiny UNet (channels 4, 8; 2 groups; one two-head mid-block attention) with every weight,
  /// group norms included, moved away from its initial value so that all paths matter.
  static func tinyUNet(scaleShift: Bool) -> UNet2DModel {
    var config = UNet2DConfig(
      sampleSize: 4, inChannels: 3, outChannels: 3, downBlocks: [.down, .down], upBlocks: [.up, .up],
      blockOutChannels: [4, 8], layersPerBlock: 1, normGroups: 2, attentionHeadDimension: 4)
    config.scaleShift = scaleShift
    var rng = RandomGenerator(seed: 7)
    let unet = UNet2DModel(config: config, using: &rng)
    for (k, (name, parameter)) in unet.namedParameters().enumerated() {
      let noise = testTensor(parameter.shape, seed: UInt64(100 + k), range: -0.3...0.3)
      parameter.assign(name.contains("norm") && name.hasSuffix("weight") ? noise + 1 : parameter.value + noise)
    }
    return unet
  }

  /// d(sum(w * unet(x, t)))/d(input and selected parameters) against central differences.
  @Test(arguments: [false, true])
  func gradientsMatchFiniteDifferences(scaleShift: Bool) {
    let unet = Self.tinyUNet(scaleShift: scaleShift)
    let x = testTensor([1, 3, 4, 4], seed: 3)
    let timesteps: [Float] = [37.5]
    let weights = testTensor([1, 3, 4, 4], seed: 99)
    func objective(_ input: Tensor) -> Double {
      let y = withoutGradients { unet(input, timesteps: timesteps) }
      return zip(y.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    let epsilon: Float = 1e-2
    let parameters = Dictionary(uniqueKeysWithValues: unet.namedParameters().map { ($0.name, $0.parameter) })
    let checked = [
      "conv_in.weight", "time_embedding.linear_1.weight", "down_blocks.0.resnets.0.norm1.weight",
      "down_blocks.1.resnets.0.time_emb_proj.bias", "mid_block.attentions.0.to_q.weight",
      "up_blocks.0.resnets.1.conv_shortcut.weight", "conv_norm_out.bias",
      // The mid attention has no group norm with scale-shift conditioning.
      scaleShift ? "mid_block.resnets.1.norm2.weight" : "mid_block.attentions.0.group_norm.bias",
    ]

    unet.zeroGrad()
    let input = x.requiringGrad()
    (unet(input, timesteps: timesteps) * weights).sum().backward()
    let inputGradient = input.grad!.scalars

    var numeric = [Float](repeating: 0, count: x.count)
    for i in 0..<x.count {
      var plus = x
      var minus = x
      plus.withUnsafeMutableBufferPointer { $0[i] += epsilon }
      minus.withUnsafeMutableBufferPointer { $0[i] -= epsilon }
      numeric[i] = Float((objective(plus) - objective(minus)) / (2 * Double(epsilon)))
    }
    expectClose(inputGradient, numeric, rtol: 2e-2, atol: 2e-3, "input")

    for name in checked {
      guard let parameter = parameters[name] else {
        Issue.record("no parameter \(name)")
        continue
      }
      let analytic = parameter.grad!.scalars
      let original = parameter.value
      // Up to 12 elements spread over the tensor.
      let indices = Array(Set((0..<12).map { $0 * original.count / 12 })).sorted()
      var numeric: [Float] = []
      for i in indices {
        var plus = original
        var minus = original
        plus.withUnsafeMutableBufferPointer { $0[i] += epsilon }
        minus.withUnsafeMutableBufferPointer { $0[i] -= epsilon }
        parameter.assign(plus)
        let up = objective(x)
        parameter.assign(minus)
        let down = objective(x)
        parameter.assign(original)
        numeric.append(Float((up - down) / (2 * Double(epsilon))))
      }
      expectClose(indices.map { analytic[$0] }, numeric, rtol: 2e-2, atol: 2e-3, name)
      #expect(numeric.contains { abs($0) > 1e-3 }, "\(name): gradient vanishes, the check proves nothing")
    }
  }
}
