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

/// w2: one denoising training step (forward, MSE to the noise, backward, AdamW), batch 16.
enum UNetTrainingWorkload {
  static func secondsPerStep() -> Double {
    var rng = RandomGenerator(seed: 0)
    let unet = benchmarkUNet(using: &rng)
    let schedule = NoiseSchedule.ddpm(betas: .linear, start: 1e-4, end: 0.02, steps: 1000)
    let optimizer = AdamW(unet.namedParameters(), learningRate: 1e-4)
    return medianSeconds(warm: 2, reps: 7) {
      let x = Tensor.normal([16, 3, 32, 32], mean: 0, std: 1, using: &rng)
      let t = rng.integers(count: 16, in: 0..<1000)
      let noise = Tensor.normal([16, 3, 32, 32], mean: 0, std: 1, using: &rng)
      let noisy = schedule.addNoise(x0: x, noise: noise, timesteps: t)
      let loss = Tensor.mseLoss(unet(noisy, timesteps: t.map(Float.init)), noise)
      optimizer.zeroGrad()
      loss.backward()
      optimizer.step()
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
