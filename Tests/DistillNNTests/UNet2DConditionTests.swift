import DistillCore
import DistillTestSupport
import Foundation
import Testing

@testable import DistillNN

/// diffusers' `UNet2DConditionModel` on sd-tiny's UNet (`Tests/Fixtures/sd-tiny/unet`:
/// cross-attention down and up blocks, a cross-attention mid block, 8×8×4 latents,
/// `cross_attention_dim` 32, and `io.safetensors` with diffusers' output for two latents, two
/// timesteps and the text encoder's hidden states).
@Suite struct UNet2DConditionTests {
  static let folder = sdTinyFixture + "/unet"

  @Test func outputMatchesDiffusers() throws {
    let unet = try UNet2DConditionModel.load(folder: Self.folder)
    #expect(unet.config.crossAttentionDown == [true, false] && unet.config.heads == [8, 8])
    let io = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/io.safetensors")
    let output = withoutGradients {
      unet(
        try! io.tensor("unet_sample"), timesteps: try! io.tensor("unet_timestep").scalars,
        encoderHiddenStates: try! io.tensor("unet_encoder_hidden_states"))
    }
    let expected = try io.tensor("unet_output")
    #expect(output.shape == [2, 4, 8, 8])
    let difference = zip(output.scalars, expected.scalars).map { Swift.abs($0 - $1) }.max()!
    #expect(difference < 1e-4, "max |difference| \(difference)")
    // The text matters: other hidden states give another output.
    let other = withoutGradients {
      unet(
        try! io.tensor("unet_sample"), timesteps: try! io.tensor("unet_timestep").scalars,
        encoderHiddenStates: try! io.tensor("unet_encoder_hidden_states") * 0)
    }
    #expect(zip(other.scalars, output.scalars).map { Swift.abs($0 - $1) }.max()! > 1e-3)
  }

  @Test func configKeysItDoesNotComputeAreRefusedByName() throws {
    let text = try String(contentsOfFile: Self.folder + "/config.json", encoding: .utf8)
    for (from, to, key) in [
      ("\"addition_embed_type\": null", "\"addition_embed_type\": \"text_time\"", "addition_embed_type"),
      ("\"only_cross_attention\": false", "\"only_cross_attention\": true", "only_cross_attention"),
      ("\"CrossAttnDownBlock2D\"", "\"SimpleCrossAttnDownBlock2D\"", "down_block_types"),
      ("\"cross_attention_dim\": 32", "\"cross_attention_dim\": [32, 32]", "cross_attention_dim"),
      ("\"upcast_attention\": false", "\"upcast_attention\": false, \"shiny\": 1", "shiny"),
    ] {
      #expect(text.contains(from), "\(from)")
      expectDistillError(containing: ["config.json", key]) {
        _ = try UNet2DConditionConfig.decode(Data(text.replacingOccurrences(of: from, with: to).utf8), source: "config.json")
      }
    }
  }
}
