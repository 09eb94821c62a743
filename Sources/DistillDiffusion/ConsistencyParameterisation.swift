import DistillCore

/// The consistency function of Song et al. (2023) built on a VP denoiser:
/// `f(x, σ) = c_skip(σ)·x + c_out(σ)·F(x, σ)` on the variance-exploding state `x = x₀ + σ·ε`, with
///
///     c_skip = σ_d²/((σ − σ_min)² + σ_d²),   c_out = σ_d·(σ − σ_min)/√(σ² + σ_d²),
///
/// and `F` the EDM network output that the denoiser implies: `F = (D − c_skip^EDM·x)/c_out^EDM`,
/// where `D(x; σ)` is the denoiser's x̂₀ at the VP state `x/√(1+σ²)` and the timestep of σ
/// (``HeunSampler/denoiser(vpModel:schedule:prediction:)``). This is how the reference code uses
/// an EDM network: the same F under the consistency scalings, so that f = x at σ_min exactly and
/// f ≈ D well above it (a student copied from a teacher starts near the teacher's x̂₀).
/// Written out, `f = a(σ)·x + b(σ)·D(x; σ)` with `b = (σ − σ_min)/σ` and
/// `a = c_skip − b·σ_d²/(σ² + σ_d²)`.
public struct ConsistencyParameterisation: Sendable, Equatable {
  /// The smallest noise level, where f is the identity (ε of the paper).
  public var sigmaMin: Double
  /// The largest noise level, where one-step sampling starts.
  public var sigmaMax: Double
  /// σ_d, the data's standard deviation in the scalings.
  public var sigmaData: Double

  public init(sigmaMin: Double, sigmaMax: Double, sigmaData: Double = 0.5) {
    self.sigmaMin = sigmaMin
    self.sigmaMax = sigmaMax
    self.sigmaData = sigmaData
  }

  /// `(c_skip, c_out)` of the consistency model at σ.
  public func scalings(_ sigma: Double) -> (skip: Double, out: Double) {
    let (skip, out) = ConsistencyScalings.consistencyModel(sigma: sigma, sigmaMin: sigmaMin, sigmaData: sigmaData)
    return (skip, out)
  }

  /// The factors `(a, b)` of `f = a·x + b·D(x; σ)`.
  public func coefficients(_ sigma: Double) -> (x: Double, denoised: Double) {
    let (skip, _) = scalings(sigma)
    let edm = EDMPreconditioning(sigmaData: sigmaData)
    // c_out / c_out^EDM = (σ − σ_min)/σ: the EDM output F enters through c_out^EDM.
    let b = (sigma - sigmaMin) / sigma
    return (skip - b * edm.cSkip(sigma), b)
  }

  /// f for a batch `x` of VE states, one σ per sample; `denoiser` is D(x; σ) in VE form.
  public func callAsFunction(_ x: Tensor, sigmas: [Double], denoiser: DenoisingModel) rethrows -> Tensor {
    let denoised = try denoiser(x, sigmas.map(Float.init))
    let factors = sigmas.map(coefficients)
    return perSample(factors.map(\.x), like: x) * x + perSample(factors.map(\.denoised), like: x) * denoised
  }

  /// D(x; σ) of `denoiser` in VE form (a VP network driven at the timestep of each σ), for `condition`.
  public static func edmDenoiser(_ denoiser: any Denoiser, _ condition: Condition = .none) -> DenoisingModel {
    HeunSampler.denoiser(vpModel: denoiser.model(condition), schedule: denoiser.schedule, prediction: denoiser.prediction)
  }
}
