import DistillCore
import DistillTestSupport
import Foundation
import Testing

@testable import DistillDiffusion

/// A new text-to-image denoiser (`init: "new"`, network type "stable-diffusion") on sd-tiny's
/// tokenizer, text encoder and VAE: it saves as a Stable-Diffusion-layout folder that loads back
/// to the same outputs, and prompt dropout puts the empty prompt where it drops.
struct NewTextToImageDenoiserTests {
  static let network: JSONValue = .object([
    "type": .string("stable-diffusion"), "text": .string(sdTinyFixture), "vae": .string(sdTinyFixture + "/vae"),
    "unet": .object([
      "sample_size": .number(4), "block_out_channels": .array([.number(16)]),
      "down_block_types": .array([.string("CrossAttnDownBlock2D")]),
      "up_block_types": .array([.string("CrossAttnUpBlock2D")]), "norm_num_groups": .number(8),
      "cross_attention_dim": .number(32), "attention_head_dim": .number(4),
    ]),
  ])

  static func make(seed: UInt64) throws -> TextToImageDenoiser {
    var rng = RandomGenerator(seed: seed)
    return try TextToImageDenoiser.makeNew(
      network: network, scheduleConfig: ScheduleConfig(), prediction: .vPrediction, location: "generator.network",
      using: &rng)
  }

  @Test func savesAsAStableDiffusionFolderThatLoadsBackToTheSameOutputs() throws {
    let denoiser = try Self.make(seed: 3)
    #expect(denoiser.sampleShape == [4, 4, 4] && denoiser.networkJSON == Self.network)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("new-sd-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try denoiser.save(folder: folder)
    // The saved folder holds copies of the text encoder, tokenizer and VAE, not links.
    for part in ["tokenizer", "text_encoder", "vae"] {
      let type = try FileManager.default.attributesOfItem(atPath: folder + "/" + part)[.type] as? FileAttributeType
      #expect(type == .typeDirectory, "\(part): \(String(describing: type))")
    }
    let loaded = try TextToImageDenoiser(folder: folder)
    #expect(loaded.prediction == .vPrediction && loaded.schedule == denoiser.schedule)
    var rng = RandomGenerator(seed: 1)
    let x = Tensor.normal([2, 4, 4, 4], using: &rng)
    let prompts = denoiser.encode(prompts: ["a sneaker", "an ankle boot"]).embeddings
    let condition = Condition(embeddings: prompts)
    let (a, b) = withoutGradients {
      (denoiser(x, timesteps: [10, 900], condition: condition), loaded(x, timesteps: [10, 900], condition: condition))
    }
    #expect((a - b).abs().max().item == 0)
    // Another seed is another network: the weights are the ones saved, not a fixed draw.
    let other = try Self.make(seed: 4)
    #expect(withoutGradients { (other(x, timesteps: [10, 900], condition: condition) - a).abs().max().item } > 1e-3)
  }

  @Test func promptDropoutPutsTheEmptyPromptWhereItDrops() throws {
    let denoiser = try Self.make(seed: 3)
    let prompts = denoiser.encode(prompts: ["a bag", "a coat", "a dress"]).embeddings
    let dropped = denoiser.promptConditioning.dropping(prompts, where: [false, true, false])
    let null = denoiser.promptConditioning.null
    for row in 0..<3 {
      let expected = row == 1 ? null : prompts.sliced(axis: 0, row..<(row + 1))
      #expect((dropped.sliced(axis: 0, row..<(row + 1)) - expected).abs().max().item == 0, "row \(row)")
    }
    #expect((prompts.sliced(axis: 0, 1..<2) - null).abs().max().item > 1e-3)
  }

  @Test func aCrossAttentionWidthOtherThanTheTextEncodersIsRefusedNamingTheKey() throws {
    guard case .object(var network) = Self.network, case .object(var unet)? = network["unet"] else { return }
    unet["cross_attention_dim"] = .number(16)
    network["unet"] = .object(unet)
    var rng = RandomGenerator(seed: 0)
    #expect {
      _ = try TextToImageDenoiser.makeNew(
        network: .object(network), scheduleConfig: ScheduleConfig(), prediction: .epsilon,
        location: "generator.network", using: &rng)
    } throws: { "\($0)".contains("generator.network.unet.cross_attention_dim: expected 32") }
  }
}
