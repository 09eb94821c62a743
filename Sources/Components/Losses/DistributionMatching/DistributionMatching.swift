import DistillCore
import DistillDiffusion
import DistillPipeline

/// DMD's distribution-matching gradient (Yin et al. 2024, as the reference code computes it):
/// noise the generator's samples x at t ~ U[tmin·T, tmax·T), get x̂₀ from the real and fake
/// scores without gradients, and push x along
/// `g = (x̂₀_fake − x̂₀_real) / mean_CHW |x − x̂₀_real|` through the surrogate loss
/// `0.5 · mse(x, stopgrad(x − g))`, whose gradient in x is g / numel.
public final class DistributionMatchingTerm: LossTerm {
  let real: ScoreEstimator
  let fake: ScoreEstimator
  let timesteps: Range<Int>
  let normalisation: String

  init(real: ScoreEstimator, fake: ScoreEstimator, timesteps: Range<Int>, normalisation: String) {
    self.real = real
    self.fake = fake
    self.timesteps = timesteps
    self.normalisation = normalisation
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    let x = context.generated()
    let n = x.shape[0]
    let t = context.timesteps(n, in: timesteps)
    let noise = Tensor.normal(x.shape, using: &context.rng)
    let gradient: Tensor = withoutGradients {
      let xt = context.schedule.addNoise(x0: x.detached(), noise: noise, timesteps: t)
      let steps = t.map(Float.init)
      let realX0 = real.denoiser.x0(xt, timesteps: steps)
      let fakeX0 = fake.denoiser.x0(xt, timesteps: steps)
      var g = fakeX0 - realX0
      switch normalisation {
      case "reference":
        let axes = Array(1..<x.rank)
        let scale = (x.detached() - realX0).abs().mean(axes: axes, keepDims: true)
        g = g / scale
      case "paper":
        // The paper's weighting w_t = σ_t / α_t · C_S / ||μ_real − x||_1 up to the constant.
        let axes = Array(1..<x.rank)
        let scale = (x.detached() - realX0).abs().mean(axes: axes, keepDims: true)
        let ratio = t.map { context.schedule.noiseScale($0) / context.schedule.signalScale($0) }
        g = g * perSample(ratio, like: x) / scale
      default:
        break
      }
      return g.nanToNum()
    }
    context.log("dm/gradient-norm", Double(gradient.square().sum().sqrt().item) / Double(n))
    let target = (x.detached() - gradient).detached()
    return 0.5 * Tensor.mseLoss(x, target)
  }
}

public enum DistributionMatching: LossComponent {
  public static let id = "distribution-matching"
  public static let kind = ComponentKind.loss
  public static let summary = "DMD's distribution-matching (KL) gradient from a real and a fake score"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("weight", .number(0...1e6), default: .number(1), "the term's weight"),
    ParameterSpec("real", .reference(section: "scores"), default: .string("real"), "the real score's name in `scores`"),
    ParameterSpec("fake", .reference(section: "scores"), default: .string("fake"), "the fake score's name in `scores`"),
    ParameterSpec(
      "timestepRange", .numbers(count: 2), default: .array([.number(0.02), .number(0.98)]),
      "the fraction of [0, T) the DM timestep is drawn from"),
    ParameterSpec(
      "normalisation", .string(choices: ["reference", "paper", "none"]), default: .string("reference"),
      "divide g by mean|x − x̂₀_real| per sample (reference code), also weight by σ_t/α_t (paper), or not"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    guard let real = context.score(entry.string("real")), let fake = context.score(entry.string("fake")) else {
      throw DistillError.invalidValue(location: entry.path, expected: "real and fake scores", found: "missing")
    }
    let range = entry.numbers("timestepRange")
    let trainSteps = context.schedule.trainSteps
    let low = Int((range[0] * Double(trainSteps)).rounded())
    let high = Int((range[1] * Double(trainSteps)).rounded())
    guard range[0] >= 0, range[1] <= 1, high > low else {
      throw DistillError.invalidValue(
        location: "\(entry.path).timestepRange", expected: "0 <= low < high <= 1", found: "\(range)")
    }
    return DistributionMatchingTerm(
      real: real, fake: fake, timesteps: low..<high, normalisation: entry.string("normalisation"))
  }
}
