import DistillCore
import DistillDiffusion

/// The hinge GAN losses over several heads (StyleGAN-T / Projected GAN, as ADD §3.2 uses them),
/// each head's logits `[N]`.
public enum HingeGAN {
  /// `−Σ_k mean D_k(fake)`: the generator's loss.
  public static func generatorLoss(fake: [Tensor]) -> Tensor {
    fake.map { -$0.mean() }.reduce(Tensor(scalar: 0), +)
  }

  /// `Σ_k mean max(0, 1 − D_k(real)) + mean max(0, 1 + D_k(fake))`: the discriminator's loss.
  public static func discriminatorLoss(fake: [Tensor], real: [Tensor]) -> Tensor {
    zip(fake, real).map { f, r in (1 - r).relu().mean() + (1 + f).relu().mean() }.reduce(
      Tensor(scalar: 0), +)
  }

  /// R1 (Mescheder et al. 2018), mean_n ‖∂D(f)/∂f‖², by a central difference along a random
  /// direction: E_δ[(D(f + σδ) − D(f − σδ))²] / (4σ²) → ‖∇D‖² for δ ~ N(0, I) as σ → 0. The
  /// autodiff has no second-order gradients, so the penalty's own gradient in the head's
  /// weights comes from this estimate; for a linear head it is exact for every σ and δ
  /// (`(w·δ)²`, whose mean over δ is ‖w‖²).
  public static func approximateR1(
    _ head: (Tensor) -> Tensor, features f: Tensor, direction: Tensor, sigma: Float
  )
    -> Tensor
  {
    let difference = head(f + direction * sigma) - head(f - direction * sigma)
    return difference.square().mean() / (4 * sigma * sigma)
  }
}

/// The weighting c(t) of ADD's score-distillation loss `c(t)·‖x̂ − x̂_ψ‖²` (§3.3, App. A).
public enum ScoreDistillationWeighting: String, CaseIterable, Sendable {
  /// c(t) = α_t: higher noise levels contribute less.
  case exponential
  /// c(t) = α_t/(2σ_t)·w(t) with SDS's w(t) = σ_t² = 1 − ᾱ_t, so that the gradient is
  /// w(t)·(ε̂ − ε) (DreamFusion; threestudio's "sds" weighting).
  case sds
  /// NFSD (Katzir et al. 2023) for an unconditional teacher: SDS's weighting, and below
  /// t = 0.2·T the noise-free direction ε̂ in place of ε̂ − ε (the target becomes
  /// x̂_ψ − (σ_t/α_t)·ε). Above it NFSD subtracts a negative prompt's ε̂, which an
  /// unconditional teacher has not; those steps keep SDS's ε̂ − ε.
  case nfsd

  /// c(t) at integer timestep `t`.
  public func weight(_ t: Int, schedule: NoiseSchedule) -> Double {
    let (alpha, sigma) = (schedule.signalScale(t), schedule.noiseScale(t))
    switch self {
    case .exponential: return alpha
    case .sds, .nfsd: return alpha * sigma / 2
    }
  }

  /// Whether the target at `t` drops the noise (NFSD's small-t rule).
  public func isNoiseFree(_ t: Int, trainSteps: Int) -> Bool {
    self == .nfsd && Double(t) < 0.2 * Double(trainSteps)
  }
}
