import DistillCore
import DistillDiffusion

/// What a loss term or auxiliary phase sees during one update: the step, its random stream,
/// the generator and its samples, the teacher, the score estimators and the data.
///
/// Randomness comes from streams the trainer derives from the manifest's seed, the step and
/// the phase alone, so a resumed run draws the same numbers. Per-sample draws (noise,
/// timesteps, data) use ``normal(_:)``, ``timesteps(_:in:)``, ``integers(in:)`` and
/// ``batch()``: each row of the batch has its own stream, keyed by its index in the global
/// batch, so N data-parallel ranks with ``batchSize`` rows each draw exactly what one process
/// with `N * batchSize` rows draws (docs/distributed.md). ``rng`` is this rank's own stream for
/// anything else.
public final class StepContext {
  public enum Phase: Equatable, Sendable {
    /// The generator's update: ``generated()`` records gradients into the generator.
    case generator
    /// An auxiliary update: ``generated()`` is detached from the generator.
    case auxiliary(name: String)
  }

  public let step: Int
  public let phase: Phase
  /// This rank's rows: ``rows``.count.
  public let batchSize: Int
  /// This rank's rows of the global batch (`0..<batchSize` in one process).
  public let rows: Range<Int>
  /// Every rank's rows together (`batchSize` in one process).
  public let globalBatchSize: Int
  public let generator: any Generator
  public let teacher: (any Denoiser)?
  public let schedule: NoiseSchedule
  public let scores: [String: ScoreEstimator]
  /// This rank's random stream for this update, for draws that are not one per sample
  /// (they differ between ranks, so a split batch does not reproduce them).
  public var rng: RandomGenerator
  /// One stream per row of ``rows``.
  private var streams: [RandomGenerator]
  private let data: (any DataSource)?
  private var cachedBatch: Batch?
  private var cachedNoise: Tensor?
  private var cachedSamples: Tensor?
  private var cachedCondition: Condition?
  /// The student step each row of ``generated()`` was made at, when the generator trains
  /// its steps one at a time (noised data, backward simulation): set by its
  /// ``TrainingSampleGenerator/trainingSample(_:condition:context:)``; nil otherwise.
  public var generatorSteps: [Int]?
  /// Diagnostics logged by the terms, merged into the step's metrics.
  public private(set) var logged: [String: Double] = [:]

  init(
    step: Int, phase: Phase, rows: Range<Int>, globalBatchSize: Int, rank: Int,
    generator: any Generator,
    teacher: (any Denoiser)?, schedule: NoiseSchedule, scores: [String: ScoreEstimator],
    data: (any DataSource)?,
    stream: RandomGenerator
  ) {
    self.step = step
    self.phase = phase
    self.rows = rows
    self.batchSize = rows.count
    self.globalBatchSize = globalBatchSize
    streams = rows.map { stream.fork(UInt64($0)) }
    rng = stream.fork(1 << 63 | UInt64(rank))
    self.generator = generator
    self.teacher = teacher
    self.schedule = schedule
    self.scores = scores
    self.data = data
  }

  /// The generator's input noise for this update, `[batchSize] + noiseShape` (drawn once).
  public func noise() -> Tensor {
    if let cachedNoise { return cachedNoise }
    let noise = normal([batchSize] + generator.noiseShape)
    cachedNoise = noise
    return noise
  }

  /// The condition of the generator's samples in this update (drawn once): for a
  /// text-conditional generator the data batch's prompt embeddings (a prompt per row); for a
  /// class-conditional generator a class per row, uniform over its classes from the row's
  /// stream, or the data batch's labels when it trains on data; none for an unconditional one.
  /// Losses ask the teacher and the scores about ``generated()`` with it.
  public func condition() -> Condition {
    if let cachedCondition { return cachedCondition }
    var condition = Condition.none
    if generator.prompts != nil {
      // Assembly checks that a text-conditional generator has a prompt source.
      guard let embeddings = try? batch().embeddings else { preconditionFailure("a text-conditional generator without prompts") }
      condition = Condition(embeddings: embeddings)
    } else if let classes = generator.classes {
      if (generator as? any TrainingSampleGenerator)?.trainsOnData == true, let labels = try? batch().labels {
        condition = Condition(labels: labels)
      } else {
        condition = Condition(labels: integers(in: 0..<classes.count))
      }
    }
    cachedCondition = condition
    return condition
  }

  /// The generator's samples for ``noise()`` and ``condition()`` (computed once per update):
  /// recording gradients in the generator phase, detached in an auxiliary phase.
  public func generated() -> Tensor {
    if let cachedSamples { return cachedSamples }
    let noise = noise()
    let condition = condition()
    let sample: () -> Tensor
    if let generator = generator as? any TrainingSampleGenerator {
      sample = { generator.trainingSample(noise, condition: condition, context: self) }
    } else {
      sample = { self.generator(noise, condition: condition) }
    }
    let samples: Tensor
    switch phase {
    case .generator: samples = sample()
    case .auxiliary: samples = withoutGradients { sample() }.detached()
    }
    cachedSamples = samples
    return samples
  }

  /// The next data batch of ``batchSize`` (drawn once per update).
  /// - Throws: ``DistillError`` when the manifest has no data source, or the source fails.
  public func batch() throws -> Batch {
    if let cachedBatch { return cachedBatch }
    guard let data else {
      throw DistillError.invalidValue(
        location: "data", expected: "a data source for this loss", found: "none")
    }
    let batch = try data.next(rows: rows, of: globalBatchSize, streams: &streams)
    cachedBatch = batch
    return batch
  }

  /// Records a diagnostic value (e.g. `dm/grad-norm`) for this step's metrics line.
  public func log(_ key: String, _ value: Double) { logged[key] = value }

  /// Standard normal noise of `shape`, whose first dimension is ``batchSize``: row `i` from
  /// row `i`'s stream.
  public func normal(_ shape: [Int]) -> Tensor {
    precondition(
      shape.first == batchSize,
      "normal(_:) draws one row per sample: shape \(shape) must start with \(batchSize)")
    return Tensor.normal(rowShape: Array(shape.dropFirst()), streams: &streams)
  }

  /// One integer in `range` per sample, each from its row's stream.
  public func integers(in range: Range<Int>) -> [Int] {
    streams.indices.map { streams[$0].integers(count: 1, in: range)[0] }
  }

  /// One uniform number in [0, 1) per sample, each from its row's stream.
  public func uniform() -> [Double] {
    streams.indices.map { Double(streams[$0].uniform(count: 1)[0]) }
  }

  /// Uniform integer timesteps in `range`, one per sample (`count` must be ``batchSize``).
  public func timesteps(_ count: Int, in range: Range<Int>) -> [Int] {
    precondition(
      count == batchSize,
      "timesteps are drawn one per sample: \(count) asked, the batch has \(batchSize)")
    return integers(in: range)
  }
}
