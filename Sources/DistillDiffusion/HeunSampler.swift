import Foundation

/// The deterministic 2nd-order Heun sampler of Karras et al. (2022), Algorithm 1 (NVlabs/edm
/// `edm_sampler` with `S_churn = 0`), for a denoiser `D(x; σ)` that returns x̂₀.
///
/// The model is called as `denoiser(x, σ per sample)`; wrap a raw network with
/// ``EDMPreconditioning/denoise(_:sigmas:network:)`` to get one.
public struct HeunSampler: Sendable {
  public var sigmaMin: Double
  public var sigmaMax: Double
  public var rho: Double

  /// EDM's defaults: σ ∈ [0.002, 80], ρ = 7.
  public init(sigmaMin: Double = 0.002, sigmaMax: Double = 80, rho: Double = 7) {
    self.sigmaMin = sigmaMin
    self.sigmaMax = sigmaMax
    self.rho = rho
  }

  /// The `steps` Karras noise levels `t_0 > ... > t_{N−1}` followed by `t_N = 0`.
  public func sigmas(steps: Int) -> [Double] {
    NoiseSchedule.karrasSigmas(count: steps, sigmaMin: sigmaMin, sigmaMax: sigmaMax, rho: rho) + [0]
  }

  /// One step from σ to `sigmaNext`: an Euler step with `d = (x − D(x; σ))/σ`, then, when
  /// `sigmaNext > 0`, the trapezoidal correction with `d' = (x' − D(x'; σ_next))/σ_next`.
  public func step(denoiser: DenoisingModel, x: Tensor, sigma: Double, sigmaNext: Double) rethrows -> Tensor {
    let n = x.shape[0]
    let h = Float(sigmaNext - sigma)
    let d = (x - (try denoiser(x, Array(repeating: Float(sigma), count: n)))) * Float(1 / sigma)
    let euler = x + d * h
    guard sigmaNext > 0 else { return euler }
    let dNext = (euler - (try denoiser(euler, Array(repeating: Float(sigmaNext), count: n)))) * Float(1 / sigmaNext)
    return x + (d + dNext) * (h / 2)
  }

  /// Runs `steps` Heun steps (`2·steps − 1` denoiser calls) from `initialNoise` (standard
  /// normal; it is scaled by σ_max) and returns the final state.
  public func sample(denoiser: DenoisingModel, initialNoise: Tensor, steps: Int) rethrows -> Tensor {
    let levels = sigmas(steps: steps)
    var x = initialNoise * Float(levels[0])
    for i in 0..<steps {
      x = try step(denoiser: denoiser, x: x, sigma: levels[i], sigmaNext: levels[i + 1])
    }
    return x
  }
}

extension HeunSampler {
  /// Heun over the σ range of a VP teacher's schedule: σ(0) to σ(T−1), ρ = 7.
  public init(vpSchedule schedule: NoiseSchedule) {
    self.init(sigmaMin: schedule.sigma(0), sigmaMax: schedule.sigma(schedule.trainSteps - 1), rho: 7)
  }

  /// D(x; σ) of a VP model: its x̂₀ at the VP state x/√(σ²+1) and the timestep of σ (the
  /// inverse of diffusers' `_sigma_to_t`), so EDM's Heun can drive a DDPM-family teacher.
  public static func denoiser(vpModel model: @escaping DenoisingModel, schedule: NoiseSchedule, prediction: Prediction)
    -> DenoisingModel
  {
    let logSigmas = schedule.sigmas.map { Foundation.log($0) }
    return { x, sigmas in
      let s = sigmas.map(Double.init)
      let xVP = x * perSample(s.map { 1 / ($0 * $0 + 1).squareRoot() }, like: x)
      let t = s.map { Float(EulerSampler.timestep(forSigma: $0, logSigmas: logSigmas)) }
      let output = try model(xVP, t)
      let abar = t.map { schedule.alphaBar(at: Double($0)) }
      return NoiseSchedule.x0(
        from: output, prediction: prediction, xt: xVP, alpha: abar.map { $0.squareRoot() },
        sigma: abar.map { (1 - $0).squareRoot() })
    }
  }
}
