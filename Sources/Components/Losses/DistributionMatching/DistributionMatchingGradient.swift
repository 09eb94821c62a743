import DistillCore
import DistillDiffusion
import DistillPipeline

/// How the DM gradient g is scaled per sample (DMD §3.2, Eq. 7–8, and the reference code).
public enum DistributionMatchingNormalisation: String, CaseIterable, Sendable {
  /// `g / mean_CHW |x − x̂₀_real|`, as DMD2's `edm_guidance.py` and `sd_guidance.py` compute it.
  case reference
  /// The paper's Eq. 7 × Eq. 8 in VP form: `α_t · g / mean_CHW |x − x̂₀_real|`, with
  /// `α_t = √ᾱ_t` (the factor the reference code drops; DMD2 issue #46).
  case paper
  /// `g` as it is.
  case none
}

/// The pieces of a DM-style update shared by ``DistributionMatchingTerm`` and
/// ``RealScoreAscentTerm``.
enum DistributionMatchingGradient {
  /// `g` scaled as `normalisation` says, with NaN and ±inf replaced (torch's `nan_to_num`).
  /// `x` is the clean sample, `realX0` the real score's x̂₀ at the noised sample.
  static func normalised(
    _ g: Tensor, x: Tensor, realX0: Tensor, timesteps: [Int], schedule: NoiseSchedule,
    normalisation: DistributionMatchingNormalisation
  ) -> Tensor {
    let axes = Array(1..<x.rank)
    var g = g
    switch normalisation {
    case .reference:
      g = g / (x - realX0).abs().mean(axes: axes, keepDims: true)
    case .paper:
      let alpha = perSample(timesteps.map(schedule.signalScale), like: x)
      g = alpha * g / (x - realX0).abs().mean(axes: axes, keepDims: true)
    case .none:
      break
    }
    return g.nanToNum()
  }

  /// `0.5 · mse(x, stopgrad(x − g))`, whose gradient in x is `g / numel`, with the
  /// diagnostics every DM-style term logs under `prefix`: the mean per-sample norm of g and
  /// the norm of this term's gradient with respect to the generated samples.
  static func surrogateLoss(_ x: Tensor, gradient g: Tensor, prefix: String, context: StepContext) -> Tensor {
    let n = Double(x.shape[0])
    let axes = Array(1..<x.rank)
    let perSampleNorm = Double(g.square().sum(axes: axes).sqrt().sum().item) / n
    context.log("\(prefix)/gradient-norm", perSampleNorm)
    context.log("\(prefix)/sample-gradient-norm", Double(g.square().sum().sqrt().item) / Double(x.count))
    let target = (x.detached() - g).detached()
    return 0.5 * Tensor.mseLoss(x, target)
  }

}
