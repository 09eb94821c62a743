import Foundation

/// A discrete variance-preserving (VP) noise schedule: `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε` for
/// integer timesteps `t` in `0..<trainSteps`.
///
/// The table of ᾱ (`alphas_cumprod`) is computed the way diffusers and PyTorch do, in
/// float32 (``ddpm(betas:start:end:steps:rescaleZeroTerminalSNR:)``), and stored as
/// `Double` so that the coefficients derived from it are computed in double precision.
///
/// ```swift
/// let schedule = NoiseSchedule.ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)
/// let xt = schedule.addNoise(x0: latents, noise: eps, timesteps: [10, 500])
/// ```
public struct NoiseSchedule: Sendable, Equatable {
  /// How the betas of a DDPM schedule are laid out (diffusers' `beta_schedule`).
  public enum BetaSchedule: String, Sendable, CaseIterable {
    /// `linspace(start, end, T)`.
    case linear
    /// `linspace(√start, √end, T)²` (Stable Diffusion).
    case scaledLinear = "scaled_linear"
    /// The iDDPM cosine: `ᾱ(t) = cos((t+0.008)/1.008·π/2)²`, betas capped at 0.999; ignores start/end.
    case squaredCosCapV2 = "squaredcos_cap_v2"
    /// `sigmoid(linspace(−6, 6, T))·(end−start) + start`.
    case sigmoid
  }

  /// ᾱ_t for `t` in `0..<trainSteps`, ordered from least to most noisy.
  public let alphasCumprod: [Double]

  /// A schedule from an explicit ᾱ table (values in `[0, 1]`, non-increasing).
  public init(alphasCumprod: [Double]) {
    precondition(!alphasCumprod.isEmpty, "a noise schedule needs at least one timestep")
    self.alphasCumprod = alphasCumprod
  }

  /// The number of training timesteps `T`.
  public var trainSteps: Int { alphasCumprod.count }

  /// ᾱ as `Float`, e.g. to compare with a diffusers `alphas_cumprod` tensor.
  public var alphasCumprodFloat: [Float] { alphasCumprod.map { Float($0) } }

  /// The betas `1 − ᾱ_t/ᾱ_{t−1}` that give this table (with ᾱ_{−1} = 1).
  public var betas: [Double] {
    alphasCumprod.indices.map { t in 1 - alphasCumprod[t] / (t == 0 ? 1 : alphasCumprod[t - 1]) }
  }

  // MARK: Construction

  /// The DDPM schedule of diffusers' `DDPMScheduler`/`DDIMScheduler`/`EulerDiscreteScheduler`
  /// (`beta_schedule`, `beta_start`, `beta_end`, `num_train_timesteps`, `rescale_betas_zero_snr`).
  ///
  /// Betas come from `torch.linspace` in float32 and ᾱ from `torch.cumprod` (which accumulates in
  /// double and rounds each output to float32); this reproduces diffusers' table bit for bit
  /// for the linear schedules. With `rescaleZeroTerminalSNR` the table is shifted and rescaled
  /// (Lin et al. 2023, Algorithm 1) so that ᾱ_{T−1} = 0 and ᾱ₀ is unchanged.
  public static func ddpm(
    betas kind: BetaSchedule = .linear, start: Double = 0.0001, end: Double = 0.02, steps: Int = 1000,
    rescaleZeroTerminalSNR: Bool = false
  ) -> NoiseSchedule {
    precondition(steps > 1, "a DDPM schedule needs at least two timesteps")
    var betas: [Float]
    switch kind {
    case .linear:
      betas = torchLinspace(Float(start), Float(end), steps)
    case .scaledLinear:
      betas = torchLinspace(Float(start.squareRoot()), Float(end.squareRoot()), steps).map { $0 * $0 }
    case .squaredCosCapV2:
      func alphaBar(_ t: Double) -> Double { Foundation.pow(Foundation.cos((t + 0.008) / 1.008 * Double.pi / 2), 2) }
      betas = (0..<steps).map { i in
        let t1 = Double(i) / Double(steps)
        let t2 = Double(i + 1) / Double(steps)
        return Float(Swift.min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
      }
    case .sigmoid:
      let scale = Float(end - start)
      let offset = Float(start)
      betas = torchLinspace(-6, 6, steps).map { 1 / (1 + Foundation.exp(-$0)) * scale + offset }
    }
    if rescaleZeroTerminalSNR { betas = rescaledToZeroTerminalSNR(betas) }
    return NoiseSchedule(alphasCumprod: torchCumprod(betas.map { 1 - $0 }).map(Double.init))
  }

  // MARK: Coefficients

  /// ᾱ_t.
  public func alphaBar(_ t: Int) -> Double { alphasCumprod[t] }

  /// √ᾱ_t, the scale of the signal in `x_t`.
  public func signalScale(_ t: Int) -> Double { alphasCumprod[t].squareRoot() }

  /// √(1−ᾱ_t), the scale of the noise in `x_t`.
  public func noiseScale(_ t: Int) -> Double { (1 - alphasCumprod[t]).squareRoot() }

  /// √((1−ᾱ_t)/ᾱ_t): the VE noise level of `x_t/√ᾱ_t` (k-diffusion's σ of a VP model).
  public func sigma(_ t: Int) -> Double { ((1 - alphasCumprod[t]) / alphasCumprod[t]).squareRoot() }

  /// The signal-to-noise ratio ᾱ_t/(1−ᾱ_t).
  public func snr(_ t: Int) -> Double { alphasCumprod[t] / (1 - alphasCumprod[t]) }

  /// The VE sigmas of every training timestep, σ_t for `t` in `0..<trainSteps` (increasing).
  public var sigmas: [Double] { alphasCumprod.indices.map(sigma) }

  // MARK: Forward process

  /// `√ᾱ_t·x₀ + √(1−ᾱ_t)·ε` with one timestep per sample of the batch (`x0` is `[N, ...]`).
  ///
  /// Differentiable in `x0` and `noise`; matches diffusers' `add_noise`.
  public func addNoise(x0: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
    perSample(timesteps.map(signalScale), like: x0) * x0 + perSample(timesteps.map(noiseScale), like: x0) * noise
  }

  /// The v target `√ᾱ_t·ε − √(1−ᾱ_t)·x₀` (diffusers' `get_velocity`), one timestep per sample.
  public func velocity(x0: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
    perSample(timesteps.map(signalScale), like: x0) * noise - perSample(timesteps.map(noiseScale), like: x0) * x0
  }

  // MARK: Continuous sigmas

  /// The Karras et al. (2022) sigmas, from `sigmaMax` down to `sigmaMin` (no final zero):
  /// `σ_i = (σ_max^{1/ρ} + i/(n−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ`.
  public static func karrasSigmas(count: Int, sigmaMin: Double, sigmaMax: Double, rho: Double = 7) -> [Double] {
    precondition(count >= 1, "karrasSigmas needs count >= 1")
    let minInv = Foundation.pow(sigmaMin, 1 / rho)
    let maxInv = Foundation.pow(sigmaMax, 1 / rho)
    return (0..<count).map { i in
      let ramp = count == 1 ? 0 : Double(i) / Double(count - 1)
      return Foundation.pow(maxInv + ramp * (minInv - maxInv), rho)
    }
  }

  /// Variance-exploding sigmas (Song et al. 2021), geometric from `sigmaMax` down to `sigmaMin`:
  /// `σ_i = σ_max·(σ_min/σ_max)^{i/(n−1)}`.
  public static func veSigmas(count: Int, sigmaMin: Double, sigmaMax: Double) -> [Double] {
    precondition(count >= 1, "veSigmas needs count >= 1")
    return (0..<count).map { i in
      let ramp = count == 1 ? 0 : Double(i) / Double(count - 1)
      return sigmaMax * Foundation.pow(sigmaMin / sigmaMax, ramp)
    }
  }
}

// MARK: - Helpers

/// `values` as a `[N, 1, ..., 1]` tensor of the rank of `x`, to scale each sample of a batch.
/// A `[N, 1, ...]` tensor of one value per sample, broadcastable against `x` of `[N, ...]`.
public func perSample(_ values: [Double], like x: Tensor) -> Tensor {
  precondition(
    x.rank >= 1 && x.shape[0] == values.count, "\(values.count) per-sample values for a batch of shape \(x.shape)")
  return Tensor(shape: [values.count] + Array(repeating: 1, count: x.rank - 1), scalars: values.map { Float($0) })
}

/// `torch.linspace(start, end, n, dtype=float32)` on the CPU: a float32 step, then fused
/// multiply-adds from `start` for the first half and back from `end` for the second.
func torchLinspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
  guard n > 1 else { return n == 1 ? [start] : [] }
  let step = (end - start) / Float(n - 1)
  return (0..<n).map { i in
    i < n / 2 ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(n - 1 - i))
  }
}

/// `torch.cumprod` of float32 values on the CPU: a double accumulator, each output rounded to float32.
func torchCumprod(_ values: [Float]) -> [Float] {
  var accumulator = 1.0
  return values.map { value in
    accumulator *= Double(value)
    return Float(accumulator)
  }
}

/// diffusers' `rescale_zero_terminal_snr`, in float32 as torch computes it.
func rescaledToZeroTerminalSNR(_ betas: [Float]) -> [Float] {
  var root = torchCumprod(betas.map { 1 - $0 }).map { $0.squareRoot() }
  let first = root[0]
  let last = root[root.count - 1]
  let scale = first / (first - last)
  root = root.map { ($0 - last) * scale }
  let alphaBar = root.map { $0 * $0 }
  return alphaBar.indices.map { i in 1 - (i == 0 ? alphaBar[0] : alphaBar[i] / alphaBar[i - 1]) }
}
