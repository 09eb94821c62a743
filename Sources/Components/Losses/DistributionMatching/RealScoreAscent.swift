import DistillCore
import DistillDiffusion
import DistillPipeline

/// The real score alone (DMD Fig. 3a): the DM update with the fake score dropped.
///
/// Dropping s_fake from DMD's `s_fake − s_real` leaves `−s_real(x_t) = (α_t(x − x̂₀_real) + σ_t ε) / σ_t²`;
/// its noise part has zero mean, so this term uses `g = x − x̂₀_real`, normalised as the DM
/// term does, through the same surrogate `0.5 · mse(x, stopgrad(x − g))`: gradient ascent on
/// log p_real,t. Nothing spreads the samples apart, so they collapse onto the nearest mode.
/// Logs `real-only/gradient-norm` and `real-only/sample-gradient-norm`.
public final class RealScoreAscentTerm: LossTerm {
  let real: ScoreEstimator
  let timesteps: Range<Int>
  let normalisation: DistributionMatchingNormalisation

  init(real: ScoreEstimator, timesteps: Range<Int>, normalisation: DistributionMatchingNormalisation) {
    self.real = real
    self.timesteps = timesteps
    self.normalisation = normalisation
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    let x = context.generated()
    let clean = x.detached()
    let t = context.timesteps(clean.shape[0], in: timesteps)
    let noise = context.normal(clean.shape)
    let g = withoutGradients {
      let xt = context.schedule.addNoise(x0: clean, noise: noise, timesteps: t)
      let realX0 = real.guided.x0(xt, timesteps: t.map(Float.init), condition: context.condition())
      return DistributionMatchingGradient.normalised(
        clean - realX0, x: clean, realX0: realX0, timesteps: t, schedule: context.schedule,
        normalisation: normalisation)
    }
    return DistributionMatchingGradient.surrogateLoss(x, gradient: g, prefix: "real-only", context: context)
  }
}

public enum RealScoreAscent: LossComponent {
  public static let id = "real-score-ascent"
  public static let summary = "the real score alone (DMD Fig. 3a): the DM update without the fake score; collapses to the nearest mode"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("real", .reference(section: "scores"), default: .string("real"), "the real score's name in `scores`"),
    ParameterSpec(
      "timestepRange", .numbers(count: 2), default: .array([.number(0.02), .number(0.98)]),
      "the fractions [low, high] of T the timestep is drawn from (both ends included)"),
    .choice("normalisation", DistributionMatchingNormalisation.self, default: .reference, "as distribution-matching's"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    guard let real = context.score(entry.string("real")) else {
      throw DistillError.invalidValue(location: "\(entry.path).real", expected: "a real score", found: "missing")
    }
    let range = try entry.timestepRange("timestepRange", trainSteps: context.schedule.trainSteps)
    return RealScoreAscentTerm(
      real: real, timesteps: range, normalisation: entry.choice("normalisation"))
  }
}
