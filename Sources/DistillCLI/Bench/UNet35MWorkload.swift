import DistillCore
import DistillDiffusion
import DistillNN

/// w5's network: the DDPM CIFAR-10 layout (Ho et al. 2020; diffusers google/ddpm-cifar10-32),
/// 35.7 M parameters, as torch_ref.py's `unet35m()` builds it.
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

/// w5 and w5bf16: one denoising training step of the 35.7 M-parameter UNet (forward, MSE to
/// the noise, backward, AdamW lr 1e-4), batch 8, 3 x 32 x 32; with `precision` bf16 the whole
/// step runs in a bf16 scope (products and convolutions in bfloat16, the rest in float32), as
/// torch_ref.py runs the forward pass under `torch.autocast("cpu", dtype=torch.bfloat16)`
/// (whose backward runs in the forward's dtypes).
enum UNet35MTrainingWorkload {
  static func secondsPerStep(precision: ComputePrecision) -> Double {
    var rng = RandomGenerator(seed: 0)
    let unet = benchmarkUNet35M(using: &rng)
    let schedule = NoiseSchedule.ddpm(betas: .linear, start: 1e-4, end: 0.02, steps: 1000)
    let optimizer = AdamW(unet.namedParameters(), learningRate: 1e-4)
    return medianSeconds(warm: 2, reps: 5) {
      let x = Tensor.normal([8, 3, 32, 32], mean: 0, std: 1, using: &rng)
      let t = rng.integers(count: 8, in: 0..<1000)
      let noise = Tensor.normal([8, 3, 32, 32], mean: 0, std: 1, using: &rng)
      withComputePrecision(precision) {
        let noisy = schedule.addNoise(x0: x, noise: noise, timesteps: t)
        let loss = Tensor.mseLoss(unet(noisy, timesteps: t.map(Float.init)), noise)
        optimizer.zeroGrad()
        loss.backward()
        optimizer.step()
      }
    }
  }
}
