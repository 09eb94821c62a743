import DistillCore

/// What a denoiser is conditioned on besides the noisy sample and its timestep.
///
/// Today a class label per sample; a conditional denoiser called with ``none`` (or with its
/// ``ClassConditioning/null`` label in a row) predicts unconditionally, as a network trained
/// with label dropout does for its null class.
public struct Condition: Equatable, Sendable {
  /// One class label per sample, `nil` for an unconditional call.
  public var labels: [Int]?

  public init(labels: [Int]? = nil) { self.labels = labels }

  /// No condition: an unconditional call.
  public static let none = Condition()

  /// The rows `range` of a per-sample condition.
  public func rows(_ range: Range<Int>) -> Condition { Condition(labels: labels.map { Array($0[range]) }) }
}

/// The class labels a conditional denoiser takes.
public struct ClassConditioning: Equatable, Sendable {
  /// The classes: labels `0..<count`.
  public var count: Int
  /// The label that stands for "no class" (the class a network trained with label dropout
  /// learnt unconditionally), outside `0..<count`; `nil` when the network has none, and then it
  /// cannot be asked unconditionally (no classifier-free guidance).
  public var null: Int?

  public init(count: Int, null: Int? = nil) {
    precondition(count >= 1 && (null.map { $0 >= count } ?? true), "classes 0..<\(count) with null label \(null ?? -1)")
    self.count = count
    self.null = null
  }

  /// The labels a network gets for `condition` and `n` samples: the condition's, or the null
  /// label in every row for an unconditional call.
  public func labels(for condition: Condition, count n: Int) -> [Int] {
    if let labels = condition.labels {
      precondition(labels.count == n, "\(labels.count) class labels for a batch of \(n)")
      return labels
    }
    guard let null else { preconditionFailure("an unconditional call of a class-conditional network without a null class") }
    return [Int](repeating: null, count: n)
  }
}

/// A denoiser asked with classifier-free guidance: the raw output is
/// `uncond + scale·(cond − uncond)`, both halves from one batched call of the base denoiser
/// (the unconditional half with the null label). Every conversion of the raw output (x̂₀, ε̂,
/// v̂, score) is affine in it at a fixed x and t, so the guided x̂₀ is the guided combination of
/// the two x̂₀ as well. An unconditional call is passed through.
public final class GuidedDenoiser: Denoiser {
  public let base: any Denoiser
  public let scale: Double

  /// - Precondition: `base` has classes with a null label (checked where guidance is set).
  public init(_ base: any Denoiser, scale: Double) {
    precondition(base.classes?.null != nil, "classifier-free guidance of a denoiser without a null class")
    self.base = base
    self.scale = scale
  }

  public var schedule: NoiseSchedule { base.schedule }
  public var prediction: Prediction { base.prediction }
  public var sampleShape: [Int]? { base.sampleShape }
  public var classes: ClassConditioning? { base.classes }
  public var summary: String { "\(base.summary), guidance \(scale)" }

  public func validateInput(shape: [Int], location: String) throws { try base.validateInput(shape: shape, location: location) }

  public func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Condition) -> Tensor {
    guard let labels = condition.labels, scale != 1 else { return base(x, timesteps: timesteps, condition: condition) }
    let n = x.shape[0]
    let null = [Int](repeating: base.classes!.null!, count: n)
    let both = base(
      Tensor.concat([x, x], axis: 0), timesteps: timesteps + timesteps, condition: Condition(labels: labels + null))
    let conditional = both.sliced(axis: 0, 0..<n)
    let unconditional = both.sliced(axis: 0, n..<(2 * n))
    return unconditional + (conditional - unconditional) * Float(scale)
  }
}

extension Denoiser {
  /// This denoiser with classifier-free guidance `scale` (itself at scale 1).
  public func guided(_ scale: Double) -> any Denoiser { scale == 1 ? self : GuidedDenoiser(self, scale: scale) }
}
