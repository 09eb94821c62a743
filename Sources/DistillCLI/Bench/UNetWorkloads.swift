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
      update(optimizer, minimizing: Tensor.mseLoss(unet(noisy, timesteps: t.map(Float.init)), noise))
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

/// w3: the DMD step of w1 with three copies of the w2 UNet: the generator (the UNet at
/// t = 999 on noise), a frozen real score (only ever run without gradients) and a trainable fake score; batch 8, 3 x 32 x 32,
/// Adam lr 1e-4 for both updates (torch_ref.py's `w3`).
final class UNetDMDWorkload {
  let batch = 8
  let shape = [3, 32, 32]
  let schedule = NoiseSchedule.ddpm(betas: .linear, start: 1e-4, end: 0.02, steps: 1000)
  let generator: UNet2DModel
  let real: UNet2DModel
  let fake: UNet2DModel
  let generatorOptimizer: Adam
  let fakeOptimizer: Adam
  var rng = RandomGenerator(seed: 0)

  init() {
    generator = benchmarkUNet(using: &rng)
    real = benchmarkUNet(using: &rng)
    fake = benchmarkUNet(using: &rng)
    generatorOptimizer = Adam(generator.namedParameters(), learningRate: 1e-4)
    fakeOptimizer = Adam(fake.namedParameters(), learningRate: 1e-4)
  }

  func generate(_ noise: Tensor) -> Tensor { generator(noise, timesteps: Array(repeating: 999, count: noise.shape[0])) }

  /// `x0` from an epsilon prediction at integer timesteps `t`.
  func x0(_ model: UNet2DModel, _ xt: Tensor, _ t: [Int]) -> Tensor {
    schedule.x0(from: model(xt, timesteps: t.map(Float.init)), prediction: .epsilon, xt: xt, timesteps: t)
  }

  func step() {
    let x = generate(Tensor.normal([batch] + shape, mean: 0, std: 1, using: &rng))
    let t = rng.integers(count: batch, in: 20..<980)
    let noise = Tensor.normal([batch] + shape, mean: 0, std: 1, using: &rng)
    let direction = withoutGradients {
      let xt = schedule.addNoise(x0: x.detached(), noise: noise, timesteps: t)
      let realX0 = x0(real, xt, t)
      let fakeX0 = x0(fake, xt, t)
      let weight = (x.detached() - realX0).abs().mean(axes: [1, 2, 3], keepDims: true)
      return (fakeX0 - realX0) / weight
    }
    update(generatorOptimizer, minimizing: 0.5 * (x - (x - direction).detached()).square().mean())

    let sample = withoutGradients { generate(Tensor.normal([batch] + shape, mean: 0, std: 1, using: &rng)) }
    let t2 = rng.integers(count: batch, in: 0..<1000)
    let noise2 = Tensor.normal([batch] + shape, mean: 0, std: 1, using: &rng)
    let fakeLoss = Tensor.mseLoss(fake(schedule.addNoise(x0: sample, noise: noise2, timesteps: t2), timesteps: t2.map(Float.init)), noise2)
    update(fakeOptimizer, minimizing: fakeLoss)
  }

  func secondsPerStep() -> Double { medianSeconds(warm: 2, reps: 7) { step() } }
}
