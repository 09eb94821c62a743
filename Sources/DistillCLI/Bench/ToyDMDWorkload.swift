import DistillDiffusion
import DistillNN

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

/// w1: one generator update with the distribution-matching gradient, then one fake-score
/// update, batch 512, Adam lr 1e-4, DDPM linear betas with T = 1000 (WORKLOADS.md).
final class ToyDMDWorkload {
  let steps = 1000
  let batch = 512
  let alphasCumprod: [Float]
  let generator: MLP
  let real: ToyScoreNetwork
  let fake: ToyScoreNetwork
  let generatorOptimizer: Adam
  let fakeOptimizer: Adam
  var rng = RandomGenerator(seed: 0)

  init() {
    alphasCumprod = NoiseSchedule.ddpm(betas: .linear, start: 1e-4, end: 0.02, steps: 1000).alphasCumprodFloat
    generator = MLP(inputSize: 2, width: 128, depth: 3, outputSize: 2, activation: .silu, using: &rng)
    real = ToyScoreNetwork(using: &rng)
    fake = ToyScoreNetwork(using: &rng)
    generatorOptimizer = Adam(generator.namedParameters(), learningRate: 1e-4)
    fakeOptimizer = Adam(fake.namedParameters(), learningRate: 1e-4)
  }

  /// `sqrt(abar_t)` and `sqrt(1 - abar_t)` as `[batch, 1]` columns.
  func coefficients(_ t: [Int]) -> (Tensor, Tensor) {
    (Tensor(shape: [t.count, 1], scalars: t.map { alphasCumprod[$0].squareRoot() }),
     Tensor(shape: [t.count, 1], scalars: t.map { (1 - alphasCumprod[$0]).squareRoot() }))
  }

  func step() {
    // Generator update with the distribution-matching gradient.
    let x = generator(Tensor.normal([batch, 2], mean: 0, std: 1, using: &rng))
    let t = rng.integers(count: batch, in: Int(0.02 * Double(steps))..<Int(0.98 * Double(steps)))
    let noise = Tensor.normal([batch, 2], mean: 0, std: 1, using: &rng)
    let direction = withoutGradients {
      let (a, s) = coefficients(t)
      let xt = a * x + s * noise
      let times = t.map(Float.init)
      let realX0 = (xt - s * real(xt, times)) / a
      let fakeX0 = (xt - s * fake(xt, times)) / a
      let weight = (x - realX0).abs().mean(axes: [1], keepDims: true)
      return (fakeX0 - realX0) / weight
    }
    update(generatorOptimizer, minimizing: 0.5 * (x - (x - direction).detached()).square().mean())

    // Fake-score update on fresh, detached generator samples.
    let sample = withoutGradients { generator(Tensor.normal([batch, 2], mean: 0, std: 1, using: &rng)) }
    let t2 = rng.integers(count: batch, in: 0..<steps)
    let noise2 = Tensor.normal([batch, 2], mean: 0, std: 1, using: &rng)
    let (a, s) = coefficients(t2)
    let fakeLoss = (fake(a * sample + s * noise2, t2.map(Float.init)) - noise2).square().mean()
    update(fakeOptimizer, minimizing: fakeLoss)
  }

  func secondsPerStep() -> Double { medianSeconds(warm: 3, reps: 15) { step() } }
}
