import DistillCore
import Foundation

extension AutoencoderKLConfig {
  /// The config as diffusers' `vae/config.json` spells it.
  public func diffusersJSON() -> [String: JSONValue] {
    func int(_ x: Int) -> JSONValue { .number(Double(x)) }
    // The shortest decimal that reads back as the Float (0.18215, not 0.18215000629425049).
    func decimal(_ x: Float) -> JSONValue { .number(Double(x.description) ?? Double(x)) }
    return [
      "_class_name": .string("AutoencoderKL"),
      "in_channels": int(inChannels),
      "out_channels": int(outChannels),
      "latent_channels": int(latentChannels),
      "block_out_channels": .array(blockOutChannels.map(int)),
      "down_block_types": .array(blockOutChannels.map { _ in .string("DownEncoderBlock2D") }),
      "up_block_types": .array(blockOutChannels.map { _ in .string("UpDecoderBlock2D") }),
      "layers_per_block": int(layersPerBlock),
      "norm_num_groups": int(normGroups),
      "act_fn": .string(activation == .gelu ? "gelu" : activation == .relu ? "relu" : "silu"),
      "mid_block_add_attention": .bool(midBlockAttention),
      "use_quant_conv": .bool(quantConv),
      "use_post_quant_conv": .bool(postQuantConv),
      "scaling_factor": decimal(scalingFactor),
      "shift_factor": decimal(shiftFactor),
    ]
  }
}

extension AutoencoderKL {
  /// Writes a diffusers-loadable `vae/` folder: `config.json` and the weights (float32).
  public func save(folder: String) throws {
    try writeModelFolder(
      folder, config: config.diffusersJSON(), weightsFile: UNet2DModel.weightsFileName, stateDict: stateDict())
  }
}
