import DistillCore
import DistillNN
import Foundation

/// `sd15`: one forward pass of the Stable Diffusion 1.5 UNet (`UNet2DConditionModel` with
/// runwayml/stable-diffusion-v1-5's `unet/config.json`, 860 M parameters, random weights) on
/// one 64 x 64 x 4 latent at t = 999 with 77 x 768 encoder hidden states, without gradients;
/// scripts/torch_sd15_ref.py runs the same with diffusers (docs/benchmarks.md). With `bf16`
/// weights the UNet is built inside `withProductWeights(.bf16)`: its product weights are drawn
/// and rounded one at a time (never all in float32) and its products run in bfloat16.
enum SD15Workload {
  /// Stable Diffusion 1.5's UNet config as its `unet/config.json` states it.
  static let config = """
    {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
     "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false, "cross_attention_dim": 768,
     "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
     "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
     "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
     "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
    """

  static func figures(weights: WeightFormat = .fp32) -> [String: Double] {
    let decoded = try! UNet2DConditionConfig.decode(Data(config.utf8), source: "sd15")
    var rng = RandomGenerator(seed: 0)
    let unet = withProductWeights(weights) { UNet2DConditionModel(config: decoded, using: &rng) }
    unet.eval()
    let latent = Tensor.normal([1, 4, 64, 64], mean: 0, std: 1, using: &rng)
    let context = Tensor.normal([1, 77, 768], mean: 0, std: 1, using: &rng)
    let seconds = medianSeconds(warm: 1, reps: 3) {
      withoutGradients { _ = unet(latent, timesteps: [999], encoderHiddenStates: context) }
    }
    return [
      "sd15_unet_forward_s": seconds, "sd15_unet_parameters_m": Double(unet.parameterCount) / 1e6,
      "sd15_unet_weights_mib": Double(unet.parameterBytes) / 1_048_576,
    ]
  }
}
