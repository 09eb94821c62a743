import DistillCore
import DistillDiffusion
import DistillPipeline

/// DMD's distribution-matching (KL) gradient (Yin et al. 2024), as the reference code
/// computes it: noise the generator's samples x at t ~ U{tmin·T, …, tmax·T}, get x̂₀ from
/// the real and fake scores without gradients, and push x along
/// `g = (x̂₀_fake − x̂₀_real) / mean_CHW |x − x̂₀_real|` through the surrogate loss
/// `0.5 · mse(x, stopgrad(x − g))`, whose gradient in x is g / numel.
///
/// Logs `dm/gradient-norm` (mean per-sample ‖g‖), `dm/sample-gradient-norm` (‖∂loss/∂x‖)
/// and `dm/score-disagreement` (mean |x̂₀_fake − x̂₀_real|). For a class-conditional generator
/// both scores are asked at each sample's class; the real score's guidance applies there.
public final class DistributionMatchingTerm: LossTerm {
  let real: ScoreEstimator
  let fake: ScoreEstimator
  let timesteps: Range<Int>
  let normalisation: DistributionMatchingNormalisation

  init(real: ScoreEstimator, fake: ScoreEstimator, timesteps: Range<Int>, normalisation: DistributionMatchingNormalisation) {
    self.real = real
    self.fake = fake
    self.timesteps = timesteps
    self.normalisation = normalisation
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    let x = context.generated()
    let g = gradient(x.detached(), context: context)
    return DistributionMatchingGradient.surrogateLoss(x, gradient: g, prefix: "dm", context: context)
  }

  /// The normalised DM gradient g for clean samples `x`, drawing t and the noise from the
  /// context's stream; logs the real/fake disagreement.
  public func gradient(_ x: Tensor, context: StepContext) -> Tensor {
    let t = context.timesteps(x.shape[0], in: timesteps)
    let noise = context.normal(x.shape)
    return withoutGradients {
      let xt = context.schedule.addNoise(x0: x, noise: noise, timesteps: t)
      let steps = t.map(Float.init)
      let condition = context.condition()
      let realX0 = real.guided.x0(xt, timesteps: steps, condition: condition)
      let fakeX0 = fake.guided.x0(xt, timesteps: steps, condition: condition)
      let difference = fakeX0 - realX0
      context.log("dm/score-disagreement", Double(difference.abs().mean().item))
      return DistributionMatchingGradient.normalised(
        difference, x: x, realX0: realX0, timesteps: t, schedule: context.schedule, normalisation: normalisation)
    }
  }
}

public enum DistributionMatching: LossComponent {
  public static let id = "distribution-matching"
  public static let summary = "DMD's distribution-matching (KL) gradient from a real and a fake score"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("real", .reference(section: "scores"), default: .string("real"), "the real score's name in `scores`"),
    ParameterSpec("fake", .reference(section: "scores"), default: .string("fake"), "the fake score's name in `scores`"),
    ParameterSpec(
      "timestepRange", .numbers(count: 2), default: .array([.number(0.02), .number(0.98)]),
      "the fractions [low, high] of T the DM timestep is drawn from (both ends included)"),
    .choice("normalisation", DistributionMatchingNormalisation.self, default: .reference,
      "divide g by mean|x − x̂₀_real| per sample (reference code), also multiply by α_t = √ᾱ_t (paper, Eq. 7–8), or neither"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    guard let real = context.score(entry.string("real")), let fake = context.score(entry.string("fake")) else {
      throw DistillError.invalidValue(location: entry.path, expected: "real and fake scores", found: "missing")
    }
    guard entry.string("real") != entry.string("fake") else {
      throw DistillError.invalidValue(
        location: "\(entry.path).fake", expected: "a score other than the real one (g would be zero)",
        found: "\"\(entry.string("fake"))\"")
    }
    guard fake.guidanceScale == 1 else {
      throw DistillError.invalidValue(
        location: "\(entry.path).fake", expected: "an unguided fake score (DMD guides the real score only)",
        found: "guidance scale \(fake.guidanceScale)")
    }
    let range = try entry.timestepRange("timestepRange", trainSteps: context.schedule.trainSteps)
    return DistributionMatchingTerm(
      real: real, fake: fake, timesteps: range,
      normalisation: entry.choice("normalisation"))
  }
}
