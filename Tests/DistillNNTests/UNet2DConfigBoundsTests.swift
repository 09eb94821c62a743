import Foundation
import DistillTestSupport
import Testing

@testable import DistillNN

/// Sizes in a config.json are bounded before a model of them is allocated (docs/reliability.md).
@Suite struct UNet2DConfigBoundsTests {
  func decode(_ text: String) throws -> UNet2DConfig { try UNet2DConfig.decode(Data(text.utf8), source: "config.json") }

  /// The count computed from the config is the count of the model built from it.
  @Test(arguments: unetFixtureNames)
  func parameterCountMatchesTheBuiltModel(fixture: String) throws {
    let data = try Data(contentsOf: unetFixtures.appendingPathComponent("\(fixture)/config.json"))
    let config = try UNet2DConfig.decode(data, source: fixture)
    var rng = RandomGenerator(seed: 0)
    #expect(try config.parameterCount() == UNet2DModel(config: config, using: &rng).parameterCount)
  }

  @Test func parameterCountCoversScaleShiftAndHeadlessAttention() throws {
    // The mid-block attention has no group norm with scale-shift conditioning and no
    // attn_norm_num_groups; one layer per block exercises the resnet counts' edge.
    var config = UNet2DConfig(
      inChannels: 1, outChannels: 2, downBlocks: [.attention, .down], upBlocks: [.up, .attention],
      blockOutChannels: [4, 8], layersPerBlock: 1, normGroups: 2, attentionHeadDimension: nil)
    config.scaleShift = true
    config.timeEmbeddingDimension = 12
    var rng = RandomGenerator(seed: 0)
    #expect(try config.parameterCount() == UNet2DModel(config: config, using: &rng).parameterCount)
  }

  @Test func absurdSizesAreRefusedBeforeAllocating() throws {
    let huge = [
      #"{"block_out_channels": [1048576], "down_block_types": ["DownBlock2D"], "up_block_types": ["UpBlock2D"]}"#,
      #"{"block_out_channels": [32], "down_block_types": ["DownBlock2D"], "up_block_types": ["UpBlock2D"], "layers_per_block": 100000000000000}"#,
      #"{"block_out_channels": [32], "down_block_types": ["DownBlock2D"], "up_block_types": ["UpBlock2D"], "time_embedding_dim": 999999999999999}"#,
      #"{"block_out_channels": [32], "down_block_types": ["DownBlock2D"], "up_block_types": ["UpBlock2D"], "in_channels": 999999999999999}"#,
    ]
    for text in huge {
      do {
        _ = try decode(text)
        Issue.record("accepted \(text)")
      } catch let error as DistillError {
        #expect(error.description.contains("a model of at most 8000000000 parameters"), "\(error)")
      }
    }
    let levels = Array(repeating: "32", count: 17).joined(separator: ",")
    let down = Array(repeating: "\"DownBlock2D\"", count: 17).joined(separator: ",")
    let up = Array(repeating: "\"UpBlock2D\"", count: 17).joined(separator: ",")
    do {
      _ = try decode(#"{"block_out_channels": [\#(levels)], "down_block_types": [\#(down)], "up_block_types": [\#(up)]}"#)
      Issue.record("accepted 17 levels")
    } catch let error as DistillError {
      #expect(error.description.contains("at most 16 levels"), "\(error)")
    }
  }

  @Test func aConfigLargerThanItsWeightsFileIsRefusedBeforeBuilding() throws {
    // A config of billions of parameters (within the limit) beside the small fixture's
    // weights: refused from the file size, without allocating some 20 GB.
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let fixture = unetFixtures.appendingPathComponent("ddpm-style")
    try FileManager.default.copyItem(
      atPath: fixture.path + "/" + UNet2DModel.weightsFileName, toPath: folder + "/" + UNet2DModel.weightsFileName)
    try #"{"block_out_channels": [4096, 4096], "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"]}"#
      .write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
    do {
      _ = try UNet2DModel.load(folder: folder)
      Issue.record("loaded a model larger than its weights")
    } catch let error as DistillError {
      #expect(error.description.contains("too small for the"), "\(error)")
      #expect(error.description.contains(folder + "/" + UNet2DModel.weightsFileName), "\(error)")
    }
  }

  @Test func weightsHoldingNaNAreRefusedNamingTheTensor() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let source = try UNet2DModel.load(folder: unetFixtures.path + "/ddpm-style")
    var weights = source.stateDict()
    let key = "down_blocks.0.resnets.0.conv1.weight"
    var poisoned = weights[key]!.scalars
    poisoned[3] = .nan
    weights[key] = Tensor(shape: weights[key]!.shape, scalars: poisoned)
    let path = folder + "/weights.safetensors"
    try SafetensorsFile.write(weights, metadata: [:], to: path)
    do {
      try source.loadWeights(path: path)
      Issue.record("loaded NaN weights")
    } catch let error as DistillError {
      #expect(error.description.contains("tensor '\(key)' holds nan at element 3"), "\(error)")
    }
    // The check is an option: a caller inspecting a broken file can still load it.
    try source.loadWeights(path: path, requireFinite: false)
  }
}

extension UNet2DConfigBoundsTests {
  @Test func anEpsilonBeyondFloatRangeIsRefused() throws {
    // The input fuzz-unet-config found (Tests/Fuzz/Corpus/unet-config/found-norm-eps-beyond-float.json):
    // norm_eps of 1e40 read as an infinite Float, and the config as written back was not JSON.
    do {
      _ = try decode(#"{"norm_eps": 10000000000000000000000000000000000000000000000e-06}"#)
      Issue.record("accepted an infinite norm_eps")
    } catch let error as DistillError {
      #expect(error.description.contains("config.json: norm_eps: expected a number of magnitude below"), "\(error)")
    }
    for key in ["freq_shift", "mid_block_scale_factor"] {
      #expect(throws: DistillError.self) { _ = try decode("{\"\(key)\": -1e39}") }
    }
  }
}
