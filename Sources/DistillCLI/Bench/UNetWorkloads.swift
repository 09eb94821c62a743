import DistillCore
import DistillDiffusion
import DistillNN

/// The UNet of WORKLOADS.md: UNet2DModel(block_out_channels (32, 64, 64), layers_per_block 1,
/// down: Down, AttnDown, Down; up: Up, AttnUp, Up; norm_num_groups 8, attention_head_dim 32).
func benchmarkUNet(using rng: inout RandomGenerator) -> UNet2DModel {
  var config = UNet2DConfig(
    sampleSize: 32, downBlocks: [.down, .attention, .down], upBlocks: [.up, .attention, .up],
    blockOutChannels: [32, 64, 64], layersPerBlock: 1, normGroups: 8, attentionHeadDimension: 32)
  config.inChannels = 3
  config.outChannels = 3
  return UNet2DModel(config: config, using: &rng)
}

/// The UNet of w5 and w5bf16: the DDPM CIFAR-10 layout (Ho et al. 2020; diffusers
/// google/ddpm-cifar10-32), 35.7 M parameters, as torch_ref.py's `unet35m()` builds it.
func benchmarkUNet35M(using rng: inout RandomGenerator) -> UNet2DModel {
  var config = UNet2DConfig(
    sampleSize: 32, downBlocks: [.down, .attention, .down, .down],
    upBlocks: [.up, .up, .attention, .up],
    blockOutChannels: [128, 256, 256, 256], layersPerBlock: 2, normGroups: 32,
    attentionHeadDimension: nil)
  config.normEps = 1e-6
  config.downsamplePadding = 0
  config.flipSinToCos = false
  config.freqShift = 1
  return UNet2DModel(config: config, using: &rng)
}

/// w2, w5 and w5bf16: one denoising training step of `unet` (forward, MSE to the noise,
/// backward, AdamW lr 1e-4) on `batch` samples of 3 x 32 x 32; with `precision` bf16 the whole
/// step runs in a bf16 scope (products and convolutions in bfloat16, the rest in float32), as
/// torch_ref.py runs w5's forward pass under `torch.autocast("cpu", dtype=torch.bfloat16)`
/// (whose backward runs in the forward's dtypes).
enum UNetTrainingWorkload {
  static func secondsPerStep(
    _ makeUNet: (inout RandomGenerator) -> UNet2DModel, batch: Int, reps: Int, precision: ComputePrecision = .fp32
  ) -> Double {
    var rng = RandomGenerator(seed: 0)
    let unet = makeUNet(&rng)
    let schedule = NoiseSchedule.ddpm(betas: .linear, start: 1e-4, end: 0.02, steps: 1000)
    let optimizer = AdamW(unet.namedParameters(), learningRate: 1e-4)
    return medianSeconds(warm: 2, reps: reps) {
      let x = Tensor.normal([batch, 3, 32, 32], mean: 0, std: 1, using: &rng)
      let t = rng.integers(count: batch, in: 0..<1000)
      let noise = Tensor.normal([batch, 3, 32, 32], mean: 0, std: 1, using: &rng)
      withComputePrecision(precision) {
        let noisy = schedule.addNoise(x0: x, noise: noise, timesteps: t)
        update(optimizer, minimizing: Tensor.mseLoss(unet(noisy, timesteps: t.map(Float.init)), noise))
      }
    }
  }
}

/// w4: sampling a batch of 16 with 50-step DDIM against one step of the same network.
enum UNetSamplingWorkload {
  static func figures() -> [String: Double] {
    var rng = RandomGenerator(seed: 0)
    let unet = benchmarkUNet(using: &rng)
    unet.eval()
    let sampler = DDIMSampler(
      schedule: .ddpm(betas: .linear, start: 1e-4, end: 0.02, steps: 1000), clipSample: false, spacing: .trailing)
    let ddim = medianSeconds(warm: 1, reps: 3) {
      withoutGradients {
        _ = sampler.sample(model: { x, t in unet(x, timesteps: t) }, initialNoise: Tensor.normal([16, 3, 32, 32], mean: 0, std: 1, using: &rng), steps: 50)
      }
    }
    let one = medianSeconds(warm: 2, reps: 10) {
      withoutGradients {
        _ = unet(Tensor.normal([16, 3, 32, 32], mean: 0, std: 1, using: &rng), timesteps: Array(repeating: 999, count: 16))
      }
    }
    return ["w4_ddim50_batch16_s": ddim, "w4_onestep_batch16_s": one, "w4_ddim50_over_onestep": ddim / one]
  }
}
