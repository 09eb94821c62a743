import Foundation

/// Euler sampling of a VP model in its VE reparametrisation (k-diffusion), as diffusers'
/// `EulerDiscreteScheduler` with `s_churn = 0`.
///
/// The state is `x = x_VP/√ᾱ` at noise level σ = √((1−ᾱ)/ᾱ). The model gets the (fractional)
/// training timestep of σ and the scaled input `x/√(σ²+1)`, and outputs the schedule's
/// ``Prediction``.
public struct EulerSampler: Sendable {
  /// The inference noise levels and the timesteps the model is conditioned on.
  public struct Plan: Sendable, Equatable {
    /// `steps + 1` noise levels, from most to least noisy, ending with 0.
    public var sigmas: [Double]
    /// `steps` model timesteps (float32 values), one per σ but the last.
    public var timesteps: [Float]
  }

  public var schedule: NoiseSchedule
  public var prediction: Prediction
  /// Karras et al. sigmas (diffusers' `use_karras_sigmas`); otherwise σ interpolated at the spaced timesteps.
  public var useKarrasSigmas: Bool
  public var spacing: TimestepSpacing
  public var stepsOffset: Int

  public init(
    schedule: NoiseSchedule, prediction: Prediction = .epsilon, useKarrasSigmas: Bool = true,
    spacing: TimestepSpacing = .linspace, stepsOffset: Int = 0
  ) {
    self.schedule = schedule
    self.prediction = prediction
    self.useKarrasSigmas = useKarrasSigmas
    self.spacing = spacing
    self.stepsOffset = stepsOffset
  }

  /// σ of every training timestep, computed in float32 as diffusers does; a zero-terminal-SNR
  /// ᾱ of 0 is replaced by 2⁻²⁴, as in diffusers.
  public var trainingSigmas: [Double] {
    schedule.alphasCumprod.map { abar in
      let a = Float(abar == 0 ? 0x1p-24 : abar)
      return Double(((1 - a) / a).squareRoot())
    }
  }

  /// diffusers' `set_timesteps(steps)`: the σ list (with a final 0) and the model timesteps.
  public func plan(steps: Int) -> Plan {
    let table = trainingSigmas
    let spaced = spacing.fractionalTimesteps(count: steps, trainSteps: schedule.trainSteps, stepsOffset: stepsOffset)
    var sigmas = spaced.map { interpolate($0, in: table) }
    var timesteps = spaced
    if useKarrasSigmas {
      sigmas = NoiseSchedule.karrasSigmas(count: steps, sigmaMin: sigmas[sigmas.count - 1], sigmaMax: sigmas[0])
      let logTable = table.map { Double(Foundation.log(Float($0))) }
      timesteps = sigmas.map { Self.timestep(forSigma: $0, logSigmas: logTable) }
    }
    return Plan(sigmas: (sigmas + [0]).map { Double(Float($0)) }, timesteps: timesteps.map { Float($0) })
  }

  /// diffusers' `_sigma_to_t`: the fractional timestep whose σ is `sigma`, by linear
  /// interpolation in log σ between neighbouring entries of the training table.
  public static func timestep(forSigma sigma: Double, logSigmas: [Double]) -> Double {
    let logSigma = Foundation.log(Swift.max(sigma, 1e-10))
    // The last index whose log σ is ≤ log σ(sigma) (0 if none), clipped so that a higher neighbour exists.
    var low = logSigmas.lastIndex { logSigma - $0 >= 0 } ?? 0
    low = Swift.min(low, logSigmas.count - 2)
    let lowValue = logSigmas[low]
    let highValue = logSigmas[low + 1]
    let w = Swift.min(Swift.max((lowValue - logSigma) / (lowValue - highValue), 0), 1)
    return (1 - w) * Double(low) + w * Double(low + 1)
  }

  /// The standard deviation of the initial state: σ_max for `linspace`/`trailing`, else √(σ_max²+1).
  public func initialNoiseSigma(_ plan: Plan) -> Double {
    let maxSigma = plan.sigmas.max() ?? 0
    return spacing == .leading ? (maxSigma * maxSigma + 1).squareRoot() : maxSigma
  }

  /// The model input `x/√(σ²+1)`.
  public func scaleModelInput(_ x: Tensor, sigma: Double) -> Tensor {
    x * Float(1 / (sigma * sigma + 1).squareRoot())
  }

  /// The denoised estimate x̂₀ from the model output at noise level σ.
  public func x0(from output: Tensor, sample: Tensor, sigma: Double) -> Tensor {
    switch prediction {
    case .epsilon: return sample - output * Float(sigma)
    case .sample: return output
    case .vPrediction:
      return output * Float(-sigma / (sigma * sigma + 1).squareRoot()) + sample * Float(1 / (sigma * sigma + 1))
    }
  }

  /// One Euler step from σ to `sigmaNext`: `x + (x − x̂₀)/σ·(σ_next − σ)`.
  public func step(output: Tensor, sigma: Double, sigmaNext: Double, sample: Tensor) -> Tensor {
    let x0 = x0(from: output, sample: sample, sigma: sigma)
    return sample + (sample - x0) * Float((sigmaNext - sigma) / sigma)
  }

  /// Runs `steps` Euler steps from `initialNoise` (standard normal; it is scaled by
  /// ``initialNoiseSigma(_:)``) and returns the final state, an estimate of x₀.
  public func sample(model: DenoisingModel, initialNoise: Tensor, steps: Int) rethrows -> Tensor {
    let plan = plan(steps: steps)
    var x = initialNoise * Float(initialNoiseSigma(plan))
    let n = x.shape[0]
    for i in 0..<steps {
      let sigma = plan.sigmas[i]
      let output = try model(scaleModelInput(x, sigma: sigma), Array(repeating: plan.timesteps[i], count: n))
      x = step(output: output, sigma: sigma, sigmaNext: plan.sigmas[i + 1], sample: x)
    }
    return x
  }
}
