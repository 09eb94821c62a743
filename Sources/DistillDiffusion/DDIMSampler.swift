import Foundation

/// DDIM sampling (Song et al. 2021), as diffusers' `DDIMScheduler`: deterministic for `eta = 0`.
///
/// The model gets integer timesteps (as `Float`) and outputs the schedule's ``Prediction``.
/// The previous timestep is always `t − T/n`, whatever the spacing, as in diffusers.
public struct DDIMSampler: SpacedTimestepSampler, Sendable {
  public var schedule: NoiseSchedule
  public var prediction: Prediction
  /// Clamp x̂₀ to `±clipSampleRange` (diffusers' `clip_sample`, default true).
  public var clipSample: Bool
  public var clipSampleRange: Double
  /// Move with the ε̂ of the clipped x̂₀, `(x − √ᾱ·x̂₀)/√(1 − ᾱ)`, instead of the model's
  /// (diffusers' `use_clipped_model_output`, default false). Distillery's own samplers turn it
  /// on wherever they clip: a guided ε image teacher's DDIM-50 went from `FD_classifier` 167 to
  /// 13 with it (docs/methods.md, "Clipping and the DDIM move").
  public var useClippedModelOutput: Bool
  /// Use ᾱ = 1 after the last step; otherwise ᾱ₀ (diffusers' `set_alpha_to_one`, default true).
  public var setAlphaToOne: Bool
  public var spacing: TimestepSpacing
  public var stepsOffset: Int

  public init(
    schedule: NoiseSchedule, prediction: Prediction = .epsilon, clipSample: Bool = true, clipSampleRange: Double = 1,
    useClippedModelOutput: Bool = false, setAlphaToOne: Bool = true, spacing: TimestepSpacing = .leading,
    stepsOffset: Int = 0
  ) {
    self.schedule = schedule
    self.prediction = prediction
    self.clipSample = clipSample
    self.clipSampleRange = clipSampleRange
    self.useClippedModelOutput = useClippedModelOutput
    self.setAlphaToOne = setAlphaToOne
    self.spacing = spacing
    self.stepsOffset = stepsOffset
  }

  /// ᾱ at the timestep a step from `t` lands on, with `steps` inference steps.
  public func previousAlphaBar(timestep t: Int, steps: Int) -> Double {
    let previous = t - schedule.trainSteps / steps
    if previous >= 0 { return schedule.alphaBar(previous) }
    return setAlphaToOne ? 1 : schedule.alphaBar(0)
  }

  /// One DDIM step from timestep `t` (of a `steps`-step schedule):
  /// `x' = √ᾱ'·x̂₀ + √(1 − ᾱ' − σ²)·ε̂ + σ·z`, with
  /// `σ = eta·√((1−ᾱ')/(1−ᾱ_t)·(1 − ᾱ_t/ᾱ'))`.
  ///
  /// `noise` (standard normal, the sample's shape) is needed only when `eta > 0`.
  /// Differentiable in `output` and `sample`.
  public func step(
    output: Tensor, timestep t: Int, sample: Tensor, steps: Int, eta: Double = 0, noise: Tensor? = nil
  ) -> Tensor {
    step(
      output: output, alphaBar: schedule.alphaBar(t), previousAlphaBar: previousAlphaBar(timestep: t, steps: steps),
      sample: sample, eta: eta, noise: noise)
  }

  /// One DDIM step between two arbitrary ᾱ levels (e.g. for the two half steps of a
  /// progressive-distillation teacher).
  public func step(
    output: Tensor, alphaBar: Double, previousAlphaBar: Double, sample: Tensor, eta: Double = 0,
    noise: Tensor? = nil
  ) -> Tensor {
    let n = sample.shape[0]
    let alpha = Array(repeating: alphaBar.squareRoot(), count: n)
    let sigma = Array(repeating: (1 - alphaBar).squareRoot(), count: n)
    var x0 = NoiseSchedule.x0(from: output, prediction: prediction, xt: sample, alpha: alpha, sigma: sigma)
    var eps = NoiseSchedule.epsilon(from: output, prediction: prediction, xt: sample, alpha: alpha, sigma: sigma)
    if clipSample { x0 = x0.clamp(min: Float(-clipSampleRange), max: Float(clipSampleRange)) }
    if clipSample && useClippedModelOutput {
      eps = NoiseSchedule.epsilon(from: x0, prediction: .sample, xt: sample, alpha: alpha, sigma: sigma)
    }
    let variance = (1 - previousAlphaBar) / (1 - alphaBar) * (1 - alphaBar / previousAlphaBar)
    let std = eta * variance.squareRoot()
    let direction = Swift.max(1 - previousAlphaBar - std * std, 0).squareRoot()
    var previous = x0 * Float(previousAlphaBar.squareRoot()) + eps * Float(direction)
    if eta > 0 {
      guard let noise else { preconditionFailure("DDIM with eta > 0 needs noise") }
      previous = previous + noise * Float(std)
    }
    return previous
  }

  /// Runs `steps` DDIM steps from `initialNoise` (standard normal, the state at the noisiest
  /// timestep). `noise(shape)` supplies fresh noise when `eta > 0`.
  public func sample(
    model: DenoisingModel, initialNoise: Tensor, steps: Int, eta: Double = 0, noise: (([Int]) -> Tensor)? = nil
  ) rethrows -> Tensor {
    var x = initialNoise
    let n = x.shape[0]
    for t in timesteps(steps: steps) {
      let output = try model(x, Array(repeating: Float(t), count: n))
      x = step(output: output, timestep: t, sample: x, steps: steps, eta: eta, noise: eta > 0 ? noise?(x.shape) : nil)
    }
    return x
  }
}
