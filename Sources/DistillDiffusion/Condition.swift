import DistillCore
import DistillNN

/// What a denoiser is conditioned on besides the noisy sample and its timestep.
///
/// A class label per sample, or a prompt's embedding per sample (a text encoder's hidden
/// states). A conditional denoiser called with ``none`` (or with its ``ClassConditioning/null``
/// label in a row) predicts unconditionally, as a network trained with label dropout does for
/// its null class; a text-conditional one then gets the empty prompt's embedding
/// (``PromptConditioning/null``).
public struct Condition: Equatable, Sendable {
  /// One class label per sample, `nil` for an unconditional call.
  public var labels: [Int]?
  /// One prompt embedding per sample, `[N, L, D]` (the encoder hidden states a
  /// cross-attention UNet attends to); `nil` for an unconditional call.
  public var embeddings: Tensor?

  public init(labels: [Int]? = nil) { self.labels = labels }

  public init(embeddings: Tensor) {
    precondition(embeddings.rank == 3, "prompt embeddings are [N, L, D], found \(embeddings.shape)")
    self.embeddings = embeddings
  }

  /// No condition: an unconditional call.
  public static let none = Condition()

  /// The rows `range` of a per-sample condition.
  public func rows(_ range: Range<Int>) -> Condition {
    var rows = Condition(labels: labels.map { Array($0[range]) })
    rows.embeddings = embeddings.map { $0.sliced(axis: 0, range) }
    return rows
  }
}

/// The prompts a text-conditional denoiser takes, as embeddings `[N, length, width]`.
public struct PromptConditioning: Equatable, Sendable {
  /// The empty prompt's embedding `[1, length, width]`: the unconditional input, which
  /// classifier-free guidance guides against.
  public var null: Tensor

  public init(null: Tensor) {
    precondition(
      null.rank == 3 && null.shape[0] == 1,
      "the null prompt embedding is [1, L, D], found \(null.shape)")
    self.null = null
  }

  /// Tokens per prompt (the text encoder's positions).
  public var length: Int { null.shape[1] }
  /// The width of one token's embedding (the UNet's `cross_attention_dim`).
  public var width: Int { null.shape[2] }

  /// The embeddings a network gets for `condition` and `n` samples: the condition's, or the
  /// null embedding in every row for an unconditional call.
  public func embeddings(for condition: Condition, count n: Int) -> Tensor {
    guard let embeddings = condition.embeddings else { return null.expand(to: [n, length, width]) }
    precondition(
      embeddings.shape == [n, length, width],
      "prompt embeddings \(embeddings.shape) for a batch of \(n) of [\(length), \(width)]")
    return embeddings
  }

  /// `embeddings` `[N, L, D]` with row `i` replaced by the null embedding where `drop[i]`
  /// (prompt dropout in training, so that the network also learns the unconditional model
  /// that classifier-free guidance needs).
  public func dropping(_ embeddings: Tensor, where drop: [Bool]) -> Tensor {
    let n = embeddings.shape[0]
    precondition(drop.count == n, "\(drop.count) dropout draws for \(n) prompt embeddings")
    let keep = Tensor(shape: [n, 1, 1], scalars: drop.map { $0 ? 0 : 1 })
    return embeddings * keep + null.expand(to: [n, length, width]) * (1 - keep)
  }
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
    precondition(
      count >= 1 && (null.map { $0 >= count } ?? true),
      "classes 0..<\(count) with null label \(null ?? -1)")
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
    guard let null else {
      preconditionFailure(
        "an unconditional call of a class-conditional network without a null class")
    }
    return [Int](repeating: null, count: n)
  }
}

/// A denoiser asked with classifier-free guidance: the raw output is
/// `uncond + scale·(cond − uncond)`, both halves from one batched call of the base denoiser
/// (the unconditional half with the null label, or the empty prompt's embedding). Every conversion of the raw output (x̂₀, ε̂,
/// v̂, score) is affine in it at a fixed x and t, so the guided x̂₀ is the guided combination of
/// the two x̂₀ as well. An unconditional call is passed through.
public final class GuidedDenoiser: Denoiser {
  public let base: any Denoiser
  public let scale: Double

  /// - Precondition: `base` has classes with a null label, or takes prompts (checked where
  ///   guidance is set).
  public init(_ base: any Denoiser, scale: Double) {
    precondition(
      base.classes?.null != nil || base.prompts != nil,
      "classifier-free guidance of a denoiser without a null class")
    self.base = base
    self.scale = scale
  }

  public var schedule: NoiseSchedule { base.schedule }
  public var prediction: Prediction { base.prediction }
  public var sampleShape: [Int]? { base.sampleShape }
  public var classes: ClassConditioning? { base.classes }
  public var prompts: PromptConditioning? { base.prompts }
  public var summary: String { "\(base.summary), guidance \(scale)" }

  public func validateInput(shape: [Int], location: String) throws {
    try base.validateInput(shape: shape, location: location)
  }

  public func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Condition) -> Tensor {
    guard scale != 1, condition.labels != nil || condition.embeddings != nil else {
      return base(x, timesteps: timesteps, condition: condition)
    }
    let n = x.shape[0]
    var paired = Condition()
    if let labels = condition.labels {
      paired.labels = labels + [Int](repeating: base.classes!.null!, count: n)
    }
    if let embeddings = condition.embeddings {
      paired.embeddings = Tensor.concat(
        [embeddings, base.prompts!.embeddings(for: .none, count: n)], axis: 0)
    }
    let both = base(
      Tensor.concat([x, x], axis: 0), timesteps: timesteps + timesteps, condition: paired)
    let conditional = both.sliced(axis: 0, 0..<n)
    let unconditional = both.sliced(axis: 0, n..<(2 * n))
    return unconditional + (conditional - unconditional) * Float(scale)
  }
}

extension Denoiser {
  /// This denoiser with classifier-free guidance `scale` (itself at scale 1).
  public func guided(_ scale: Double) -> any Denoiser {
    scale == 1 ? self : GuidedDenoiser(self, scale: scale)
  }
}

extension FeatureTapping {
  /// The features at `condition`: its class labels, or its prompt embeddings for a
  /// text-conditional network.
  public func features(_ x: Tensor, timesteps: [Float], condition: Condition) -> NetworkFeatures {
    features(x, timesteps: timesteps, labels: condition.labels, encoderHiddenStates: condition.embeddings)
  }
}
