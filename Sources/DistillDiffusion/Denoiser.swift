import Foundation

/// A denoising network together with the noise schedule it was trained on and the quantity it
/// predicts: a teacher to distil from, or a student being trained.
///
/// ``callAsFunction(_:timesteps:condition:)`` is the raw network: its output is of type ``prediction``.
/// A class-conditional denoiser states its ``classes``, a text-conditional one its ``prompts``; an
/// unconditional one ignores the condition.
/// The extension converts it to x̂₀, ε̂, v̂ or the score with the schedule's ᾱ at each
/// sample's timestep. Timesteps may be fractional (Euler samplers condition on fractional
/// timesteps); the network gets them as they are, and the conversions evaluate the schedule
/// with ``NoiseSchedule/alphaBar(at:)``.
///
/// The call records gradients when they are enabled; wrap a frozen teacher's calls in
/// `withoutGradients { }`.
public protocol Denoiser: AnyObject {
  /// The VP schedule of the timesteps the network is conditioned on.
  var schedule: NoiseSchedule { get }
  /// What the raw network outputs.
  var prediction: Prediction { get }
  /// The shape of one sample (`[C, H, W]` or `[D]`) when the denoiser fixes it, for sampling.
  var sampleShape: [Int]? { get }
  /// One line saying what this denoiser is, for command-line output.
  var summary: String { get }

  /// The classes a conditional denoiser takes; `nil` for an unconditional one (the default).
  var classes: ClassConditioning? { get }

  /// The prompt embeddings a text-conditional denoiser takes; `nil` for one that takes no
  /// prompts (the default).
  var prompts: PromptConditioning? { get }

  /// The raw network output (of type ``prediction``) for `x` of `[N, ...]`, one timestep per
  /// sample and the condition (``Condition/none`` for an unconditional call).
  func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Condition) -> Tensor

  /// Throws ``DistillError/invalidValue(location:expected:found:)`` at `location` when a batch
  /// of `shape` cannot be passed to ``callAsFunction(_:timesteps:condition:)``.
  func validateInput(shape: [Int], location: String) throws
}

extension Denoiser {
  public var classes: ClassConditioning? { nil }
  public var prompts: PromptConditioning? { nil }

  /// The unconditional raw output.
  public func callAsFunction(_ x: Tensor, timesteps: [Float]) -> Tensor { self(x, timesteps: timesteps, condition: .none) }

  /// `(√ᾱ, √(1−ᾱ))` at each (possibly fractional) timestep.
  public func scales(_ timesteps: [Float]) -> (alpha: [Double], sigma: [Double]) {
    let alphaBars = timesteps.map { schedule.alphaBar(at: Double($0)) }
    return (alphaBars.map { $0.squareRoot() }, alphaBars.map { (1 - $0).squareRoot() })
  }

  /// The clean-sample estimate x̂₀ (no clipping).
  public func x0(_ x: Tensor, timesteps: [Float], condition: Condition = .none) -> Tensor {
    let (alpha, sigma) = scales(timesteps)
    return NoiseSchedule.x0(
      from: self(x, timesteps: timesteps, condition: condition), prediction: prediction, xt: x, alpha: alpha, sigma: sigma)
  }

  /// The noise estimate ε̂.
  public func epsilon(_ x: Tensor, timesteps: [Float], condition: Condition = .none) -> Tensor {
    let (alpha, sigma) = scales(timesteps)
    return NoiseSchedule.epsilon(
      from: self(x, timesteps: timesteps, condition: condition), prediction: prediction, xt: x, alpha: alpha, sigma: sigma)
  }

  /// The velocity estimate v̂ = √ᾱ·ε̂ − √(1−ᾱ)·x̂₀.
  public func velocity(_ x: Tensor, timesteps: [Float], condition: Condition = .none) -> Tensor {
    output(as: .vPrediction, x, timesteps: timesteps, condition: condition)
  }

  /// The score ∇ log p_t(x) ≈ −ε̂/√(1−ᾱ).
  public func score(_ x: Tensor, timesteps: [Float], condition: Condition = .none) -> Tensor {
    let (_, sigma) = scales(timesteps)
    return epsilon(x, timesteps: timesteps, condition: condition) * perSample(sigma.map { -1 / $0 }, like: x)
  }

  /// The estimate of type `target` (one network call).
  public func output(as target: Prediction, _ x: Tensor, timesteps: [Float], condition: Condition = .none) -> Tensor {
    let raw = self(x, timesteps: timesteps, condition: condition)
    if target == prediction { return raw }
    let (alpha, sigma) = scales(timesteps)
    switch target {
    case .sample: return NoiseSchedule.x0(from: raw, prediction: prediction, xt: x, alpha: alpha, sigma: sigma)
    case .epsilon: return NoiseSchedule.epsilon(from: raw, prediction: prediction, xt: x, alpha: alpha, sigma: sigma)
    case .vPrediction:
      let x0 = NoiseSchedule.x0(from: raw, prediction: prediction, xt: x, alpha: alpha, sigma: sigma)
      let eps = NoiseSchedule.epsilon(from: raw, prediction: prediction, xt: x, alpha: alpha, sigma: sigma)
      return perSample(alpha, like: x) * eps - perSample(sigma, like: x) * x0
    }
  }

  /// The raw network as the samplers call it, for `condition` (its rows those of the batch sampled).
  public func model(_ condition: Condition = .none) -> DenoisingModel { { x, t in self(x, timesteps: t, condition: condition) } }
}

extension NoiseSchedule {
  /// ᾱ at a possibly fractional timestep `t`, clamped to `[0, T−1]`.
  ///
  /// An integer `t` gives the table entry exactly. Between integers, log σ (σ = √((1−ᾱ)/ᾱ))
  /// is interpolated linearly and ᾱ = 1/(1+σ²): the inverse of diffusers' `_sigma_to_t`
  /// (``EulerSampler/timestep(forSigma:logSigmas:)``), so the fractional timestep an Euler
  /// sampler passes maps back to its σ. Where a neighbour has ᾱ = 0 or 1 (log σ infinite), ᾱ
  /// itself is interpolated linearly.
  public func alphaBar(at t: Double) -> Double {
    guard t.isFinite else { return t > 0 ? alphasCumprod[trainSteps - 1] : alphasCumprod[0] }
    let clamped = Swift.min(Swift.max(t, 0), Double(trainSteps - 1))
    let low = Int(clamped.rounded(.down))
    let w = clamped - Double(low)
    if w == 0 || low + 1 >= trainSteps { return alphasCumprod[low] }
    let a0 = alphasCumprod[low]
    let a1 = alphasCumprod[low + 1]
    guard a0 > 0, a0 < 1, a1 > 0, a1 < 1 else { return (1 - w) * a0 + w * a1 }
    let logSigma0 = 0.5 * Foundation.log((1 - a0) / a0)
    let logSigma1 = 0.5 * Foundation.log((1 - a1) / a1)
    let sigma = Foundation.exp((1 - w) * logSigma0 + w * logSigma1)
    return 1 / (1 + sigma * sigma)
  }
}
