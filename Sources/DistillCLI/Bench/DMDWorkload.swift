import DistillDiffusion
import DistillNN

/// w1 and w3: one generator update with the distribution-matching gradient, then one
/// fake-score update on fresh, detached generator samples; Adam lr 1e-4 for both updates, DDPM
/// linear betas with T = 1000, epsilon-predicting scores (WORKLOADS.md, torch_ref.py's `w1`
/// and `w3`). The real score only ever runs without gradients.
final class DMDWorkload {
  /// A network of the step: its parameters, and its output on a batch at float timesteps.
  struct Network {
    let module: Module
    let run: (Tensor, [Float]) -> Tensor
  }

  let batch: Int
  let shape: [Int]
  let schedule = NoiseSchedule.ddpm(betas: .linear, start: 1e-4, end: 0.02, steps: 1000)
  let generator: Network
  let real: Network
  let fake: Network
  let generatorOptimizer: Adam
  let fakeOptimizer: Adam
  var rng: RandomGenerator

  /// The generator, then the real and the fake score, drawn from one seed in that order.
  init(
    batch: Int, shape: [Int], generator makeGenerator: (inout RandomGenerator) -> Network,
    score makeScore: (inout RandomGenerator) -> Network
  ) {
    var rng = RandomGenerator(seed: 0)
    (self.batch, self.shape) = (batch, shape)
    (generator, real, fake) = (makeGenerator(&rng), makeScore(&rng), makeScore(&rng))
    generatorOptimizer = Adam(generator.module.namedParameters(), learningRate: 1e-4)
    fakeOptimizer = Adam(fake.module.namedParameters(), learningRate: 1e-4)
    self.rng = rng
  }

  /// w1: 2-D points, batch 512; the generator an MLP, the scores ``ToyScoreNetwork``s.
  static func toy() -> DMDWorkload {
    DMDWorkload(batch: 512, shape: [2]) { rng in
      let mlp = MLP(inputSize: 2, width: 128, depth: 3, outputSize: 2, activation: .silu, using: &rng)
      return Network(module: mlp) { x, _ in mlp(x) }
    } score: { rng in
      let score = ToyScoreNetwork(using: &rng)
      return Network(module: score) { x, t in score(x, t) }
    }
  }

  /// w3: three copies of the w2 UNet (the generator runs at t = 999 on noise), batch 8, 3 x 32 x 32.
  static func unet() -> DMDWorkload {
    let network = { (rng: inout RandomGenerator) -> Network in
      let unet = benchmarkUNet(using: &rng)
      return Network(module: unet) { x, t in unet(x, timesteps: t) }
    }
    return DMDWorkload(batch: 8, shape: [3, 32, 32], generator: network, score: network)
  }

  func generate() -> Tensor {
    generator.run(Tensor.normal([batch] + shape, mean: 0, std: 1, using: &rng), Array(repeating: 999, count: batch))
  }

  func x0(_ score: Network, _ xt: Tensor, _ t: [Int]) -> Tensor {
    schedule.x0(from: score.run(xt, t.map(Float.init)), prediction: .epsilon, xt: xt, timesteps: t)
  }

  func step() {
    let x = generate()
    let t = rng.integers(count: batch, in: 20..<980)
    let noise = Tensor.normal([batch] + shape, mean: 0, std: 1, using: &rng)
    let direction = withoutGradients {
      let xt = schedule.addNoise(x0: x.detached(), noise: noise, timesteps: t)
      let realX0 = x0(real, xt, t)
      let weight = (x.detached() - realX0).abs().mean(axes: Array(1...shape.count), keepDims: true)
      return (x0(fake, xt, t) - realX0) / weight
    }
    update(generatorOptimizer, minimizing: 0.5 * (x - (x - direction).detached()).square().mean())

    let sample = withoutGradients { generate() }
    let t2 = rng.integers(count: batch, in: 0..<1000)
    let noise2 = Tensor.normal([batch] + shape, mean: 0, std: 1, using: &rng)
    update(
      fakeOptimizer,
      minimizing: Tensor.mseLoss(fake.run(schedule.addNoise(x0: sample, noise: noise2, timesteps: t2), t2.map(Float.init)), noise2))
  }

  func secondsPerStep(warm: Int, reps: Int) -> Double { medianSeconds(warm: warm, reps: reps) { step() } }
}

/// epsilon(x_t, t) for 2-D data: an MLP on `[x, sinusoidal(t, 16)]` (torch_ref.py's ScoreMLP).
final class ToyScoreNetwork: Module {
  let net: MLP

  init(using rng: inout RandomGenerator) {
    net = MLP(inputSize: 18, width: 128, depth: 3, outputSize: 2, activation: .silu, using: &rng)
    super.init()
    register("net", net)
  }

  func callAsFunction(_ x: Tensor, _ t: [Float]) -> Tensor {
    net(Tensor.concat([x, sinusoidalEmbedding(t, dimension: 16, frequencyShift: 0)], axis: 1))
  }
}
