#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A multiplier of the base learning rate as a function of the step (0-based: the factor
/// for the update made by the `step`-th call of ``Optimizer/step()``, counting from 0).
///
/// Formulas, evaluated in `Double` (`s` the step, `w` the warm-up steps):
///
/// - ``constant``: `1`.
/// - ``linearWarmup(steps:)``: `min(1, (s + 1) / w)`, i.e. PyTorch's
///   `LambdaLR(opt, lambda s: min(1, (s + 1) / w))`: `1/w` at step 0, reaching 1 at step
///   `w - 1`; `1` throughout when `w ≤ 0`.
/// - ``cosine(totalSteps:warmupSteps:minimumFactor:)``: the same warm-up for `s < w`, then
///   with `progress = min(1, (s - w) / max(1, T - w))`
///   `minimumFactor + (1 - minimumFactor) · (1 + cos(π · progress)) / 2`,
///   which is 1 at step `w`, `minimumFactor` from step `T` on, and equals
///   `CosineAnnealingLR(opt, T_max=T - w, eta_min=minimumFactor · lr)` started after warm-up
///   up to step `T` (where PyTorch's schedule would rise again, this one stays at the minimum).
public enum LearningRateSchedule: Sendable, Hashable, Codable {
  case constant
  case linearWarmup(steps: Int)
  case cosine(totalSteps: Int, warmupSteps: Int = 0, minimumFactor: Float = 0)

  /// The multiplier of the base learning rate at `step` (≥ 0).
  public func factor(atStep step: Int) -> Float {
    precondition(step >= 0, "learning-rate schedule asked for negative step \(step)")
    switch self {
    case .constant:
      return 1
    case .linearWarmup(let warmup):
      return Float(Self.warmupFactor(step, warmup))
    case .cosine(let total, let warmup, let minimum):
      if step < warmup { return Float(Self.warmupFactor(step, warmup)) }
      let progress = min(1, Double(step - warmup) / Double(max(1, total - warmup)))
      let low = Double(minimum)
      return Float(low + (1 - low) * 0.5 * (1 + cos(Double.pi * progress)))
    }
  }

  /// `base · factor(atStep: step)`, computed in `Double`.
  public func learningRate(base: Float, atStep step: Int) -> Float {
    Float(Double(base) * Double(factor(atStep: step)))
  }

  private static func warmupFactor(_ step: Int, _ warmup: Int) -> Double {
    warmup <= 0 ? 1 : min(1, Double(step + 1) / Double(warmup))
  }
}
