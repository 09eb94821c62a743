import Foundation

/// What a denoising network predicts (diffusers' `prediction_type`).
public enum Prediction: String, Sendable, CaseIterable {
  /// The noise ε that was added.
  case epsilon
  /// The clean sample x₀.
  case sample
  /// The velocity `v = √ᾱ·ε − √(1−ᾱ)·x₀` (Salimans & Ho 2022).
  case vPrediction = "v_prediction"
}

// MARK: - Conversions on a VP schedule

/// Conversions among the quantities a VP model can predict, for a batch with one timestep per
/// sample. With `α = √ᾱ_t` and `σ = √(1−ᾱ_t)`, `x_t = α·x₀ + σ·ε` and `v = α·ε − σ·x₀`.
///
/// The coefficients are computed in `Double` and applied as constant `[N, 1, ..., 1]` float
/// tensors, so every conversion is differentiable with respect to `output` and `xt`.
extension NoiseSchedule {
  /// The clean-sample estimate x̂₀ implied by a model output (before any clipping).
  public func x0(from output: Tensor, prediction: Prediction, xt: Tensor, timesteps: [Int]) -> Tensor {
    let (alpha, sigma) = scales(timesteps)
    return Self.x0(from: output, prediction: prediction, xt: xt, alpha: alpha, sigma: sigma)
  }

  /// The noise estimate ε̂ implied by a model output.
  public func epsilon(from output: Tensor, prediction: Prediction, xt: Tensor, timesteps: [Int]) -> Tensor {
    let (alpha, sigma) = scales(timesteps)
    return Self.epsilon(from: output, prediction: prediction, xt: xt, alpha: alpha, sigma: sigma)
  }

  /// The velocity estimate v̂ = α·ε̂ − σ·x̂₀ implied by a model output.
  public func velocity(from output: Tensor, prediction: Prediction, xt: Tensor, timesteps: [Int]) -> Tensor {
    if prediction == .vPrediction { return output }
    let (alpha, sigma) = scales(timesteps)
    let x0 = Self.x0(from: output, prediction: prediction, xt: xt, alpha: alpha, sigma: sigma)
    let eps = Self.epsilon(from: output, prediction: prediction, xt: xt, alpha: alpha, sigma: sigma)
    return perSample(alpha, like: xt) * eps - perSample(sigma, like: xt) * x0
  }

  /// The score ∇ log p(x_t) ≈ −ε̂/√(1−ᾱ_t) implied by a model output.
  public func score(from output: Tensor, prediction: Prediction, xt: Tensor, timesteps: [Int]) -> Tensor {
    let (alpha, sigma) = scales(timesteps)
    let eps = Self.epsilon(from: output, prediction: prediction, xt: xt, alpha: alpha, sigma: sigma)
    return eps * perSample(sigma.map { -1 / $0 }, like: xt)
  }

  /// What a model of type `prediction` should output for clean data `x0` noised with `noise`:
  /// the training target (ε, x₀ or v).
  public func target(for prediction: Prediction, x0: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
    switch prediction {
    case .epsilon: return noise
    case .sample: return x0
    case .vPrediction: return velocity(x0: x0, noise: noise, timesteps: timesteps)
    }
  }

  /// The model output of type `prediction` that corresponds to the estimates `x0` and `epsilon`.
  public func output(for prediction: Prediction, x0: Tensor, epsilon: Tensor, timesteps: [Int]) -> Tensor {
    target(for: prediction, x0: x0, noise: epsilon, timesteps: timesteps)
  }

  /// `(√ᾱ_t, √(1−ᾱ_t))` for each timestep.
  func scales(_ timesteps: [Int]) -> (alpha: [Double], sigma: [Double]) {
    (timesteps.map(signalScale), timesteps.map(noiseScale))
  }

  /// x̂₀ from a model output given per-sample signal scales `alpha` and noise scales `sigma`
  /// (any VP parameterisation, discrete or continuous).
  public static func x0(from output: Tensor, prediction: Prediction, xt: Tensor, alpha: [Double], sigma: [Double])
    -> Tensor
  {
    switch prediction {
    case .epsilon:  // (x_t − σ·ε)/α
      return perSample(alpha.map { 1 / $0 }, like: xt) * xt
        - perSample(zip(sigma, alpha).map { $0 / $1 }, like: xt) * output
    case .sample:
      return output
    case .vPrediction:  // α·x_t − σ·v
      return perSample(alpha, like: xt) * xt - perSample(sigma, like: xt) * output
    }
  }

  /// ε̂ from a model output given per-sample signal scales `alpha` and noise scales `sigma`.
  public static func epsilon(
    from output: Tensor, prediction: Prediction, xt: Tensor, alpha: [Double], sigma: [Double]
  ) -> Tensor {
    switch prediction {
    case .epsilon:
      return output
    case .sample:  // (x_t − α·x₀)/σ
      return perSample(sigma.map { 1 / $0 }, like: xt) * xt
        - perSample(zip(alpha, sigma).map { $0 / $1 }, like: xt) * output
    case .vPrediction:  // α·v + σ·x_t
      return perSample(alpha, like: xt) * output + perSample(sigma, like: xt) * xt
    }
  }
}

// MARK: - EDM

/// The preconditioning of Karras et al. (2022), "Elucidating the Design Space of
/// Diffusion-Based Generative Models" (NVlabs/edm `EDMPrecond`):
/// `D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ))`.
public struct EDMPreconditioning: Sendable, Equatable {
  /// The standard deviation of the data, σ_d (0.5 for images in [−1, 1]).
  public var sigmaData: Double

  public init(sigmaData: Double = 0.5) { self.sigmaData = sigmaData }

  /// `σ_d²/(σ² + σ_d²)`.
  public func cSkip(_ sigma: Double) -> Double { sigmaData * sigmaData / (sigma * sigma + sigmaData * sigmaData) }

  /// `σ·σ_d/√(σ² + σ_d²)`.
  public func cOut(_ sigma: Double) -> Double {
    sigma * sigmaData / (sigma * sigma + sigmaData * sigmaData).squareRoot()
  }

  /// `1/√(σ² + σ_d²)`.
  public func cIn(_ sigma: Double) -> Double { 1 / (sigma * sigma + sigmaData * sigmaData).squareRoot() }

  /// `ln(σ)/4`, the noise conditioning passed to the network.
  public func cNoise(_ sigma: Double) -> Double { Foundation.log(sigma) / 4 }

  /// The EDM loss weight `λ(σ) = (σ² + σ_d²)/(σ·σ_d)²`.
  public func lossWeight(_ sigma: Double) -> Double {
    (sigma * sigma + sigmaData * sigmaData) / ((sigma * sigmaData) * (sigma * sigmaData))
  }

  /// The denoiser `D(x; σ)` for a batch with one σ per sample, from a raw network `F(x, c_noise)`.
  public func denoise(
    _ x: Tensor, sigmas: [Double], network: (Tensor, [Float]) throws -> Tensor
  ) rethrows -> Tensor {
    let raw = try network(perSample(sigmas.map(cIn), like: x) * x, sigmas.map { Float(cNoise($0)) })
    return perSample(sigmas.map(cSkip), like: x) * x + perSample(sigmas.map(cOut), like: x) * raw
  }
}

// MARK: - Consistency-model boundary conditions

/// The skip/output scalings that make a consistency function the identity at the smallest noise.
public enum ConsistencyScalings {
  /// Song et al. (2023), diffusers `CMStochasticIterativeScheduler`:
  /// `c_skip = σ_d²/((σ−σ_min)² + σ_d²)` and `c_out = (σ−σ_min)·σ_d/√(σ² + σ_d²)`.
  public static func consistencyModel(sigma: Double, sigmaMin: Double = 0.002, sigmaData: Double = 0.5)
    -> (cSkip: Double, cOut: Double)
  {
    let shifted = sigma - sigmaMin
    return (
      sigmaData * sigmaData / (shifted * shifted + sigmaData * sigmaData),
      shifted * sigmaData / (sigma * sigma + sigmaData * sigmaData).squareRoot()
    )
  }

  /// Latent consistency models (diffusers `LCMScheduler`), for a discrete timestep `t`:
  /// `c_skip = σ_d²/((s·t)² + σ_d²)` and `c_out = s·t/√((s·t)² + σ_d²)` with `s = timestepScaling`.
  public static func latentConsistencyModel(timestep: Double, sigmaData: Double = 0.5, timestepScaling: Double = 10)
    -> (cSkip: Double, cOut: Double)
  {
    let scaled = timestep * timestepScaling
    return (
      sigmaData * sigmaData / (scaled * scaled + sigmaData * sigmaData),
      scaled / (scaled * scaled + sigmaData * sigmaData).squareRoot()
    )
  }
}
