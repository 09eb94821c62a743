import Foundation

/// Ancestral DDPM sampling (Ho et al. 2020), as diffusers' `DDPMScheduler`.
///
/// The model gets integer timesteps (as `Float`) and outputs the schedule's ``Prediction``.
public struct DDPMSampler: SpacedTimestepSampler, Sendable {
  /// The variance of the added noise (diffusers' `variance_type`).
  public enum Variance: String, Sendable {
    /// The posterior variance `(1−ᾱ_{t'})/(1−ᾱ_t)·β'_t`, clamped to ≥ 1e-20.
    case fixedSmall = "fixed_small"
    /// `β'_t = 1 − ᾱ_t/ᾱ_{t'}`.
    case fixedLarge = "fixed_large"
  }

  public var schedule: NoiseSchedule
  public var prediction: Prediction
  public var variance: Variance
  /// Clamp x̂₀ to `±clipSampleRange` (diffusers' `clip_sample`, default true).
  public var clipSample: Bool
  public var clipSampleRange: Double
  public var spacing: TimestepSpacing
  public var stepsOffset: Int

  public init(
    schedule: NoiseSchedule, prediction: Prediction = .epsilon, variance: Variance = .fixedSmall,
    clipSample: Bool = true, clipSampleRange: Double = 1, spacing: TimestepSpacing = .leading, stepsOffset: Int = 0
  ) {
    self.schedule = schedule
    self.prediction = prediction
    self.variance = variance
    self.clipSample = clipSample
    self.clipSampleRange = clipSampleRange
    self.spacing = spacing
    self.stepsOffset = stepsOffset
  }

  /// One reverse step from timestep `t` to `previousTimestep` (−1 after the last step; `t − 1`
  /// without inference spacing). `noise` is a standard normal tensor of the sample's shape;
  /// it is used only when `t > 0`, and may be `nil` for the posterior mean.
  public func step(output: Tensor, timestep t: Int, previousTimestep: Int, sample: Tensor, noise: Tensor?) -> Tensor {
    let alphaBar = schedule.alphaBar(t)
    let alphaBarPrev = previousTimestep >= 0 ? schedule.alphaBar(previousTimestep) : 1
    let betaBar = 1 - alphaBar
    let betaBarPrev = 1 - alphaBarPrev
    let alphaT = alphaBar / alphaBarPrev
    let betaT = 1 - alphaT
    let n = sample.shape[0]
    var x0 = NoiseSchedule.x0(
      from: output, prediction: prediction, xt: sample,
      alpha: Array(repeating: alphaBar.squareRoot(), count: n), sigma: Array(repeating: betaBar.squareRoot(), count: n))
    if clipSample { x0 = x0.clamp(min: Float(-clipSampleRange), max: Float(clipSampleRange)) }
    let x0Coefficient = alphaBarPrev.squareRoot() * betaT / betaBar
    let sampleCoefficient = alphaT.squareRoot() * betaBarPrev / betaBar
    var previous = x0 * Float(x0Coefficient) + sample * Float(sampleCoefficient)
    if t > 0, let noise {
      let variance: Double
      switch self.variance {
      case .fixedSmall: variance = Swift.max(betaBarPrev / betaBar * betaT, 1e-20)
      case .fixedLarge: variance = betaT
      }
      previous = previous + noise * Float(variance.squareRoot())
    }
    return previous
  }

  /// Runs the full chain from `initialNoise` (standard normal, the state at the noisiest step)
  /// with `steps` inference steps; `noise(shape)` supplies fresh standard normal noise per step.
  public func sample(
    model: DenoisingModel, initialNoise: Tensor, steps: Int, noise: ([Int]) -> Tensor
  ) rethrows -> Tensor {
    let schedule = timesteps(steps: steps)
    var x = initialNoise
    let n = x.shape[0]
    for (i, t) in schedule.enumerated() {
      let output = try model(x, Array(repeating: Float(t), count: n))
      let previous = i + 1 < schedule.count ? schedule[i + 1] : -1
      x = step(output: output, timestep: t, previousTimestep: previous, sample: x, noise: t > 0 ? noise(x.shape) : nil)
    }
    return x
  }
}
