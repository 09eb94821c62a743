import DistillCore
import DistillDiffusion

/// What a loss term or auxiliary phase sees during one update: the step, its random stream,
/// the generator and its samples, the teacher, the score estimators and the data.
///
/// Everything random in an update draws from ``rng``, which the trainer derives from the
/// manifest's seed, the step and the phase alone, so a resumed run draws the same numbers.
public final class StepContext {
  public enum Phase: Equatable, Sendable {
    /// The generator's update: ``generated()`` records gradients into the generator.
    case generator
    /// An auxiliary update: ``generated()`` is detached from the generator.
    case auxiliary(name: String)
  }

  public let step: Int
  public let phase: Phase
  public let batchSize: Int
  public let generator: any Generator
  public let teacher: (any Denoiser)?
  public let schedule: NoiseSchedule
  public let scores: [String: ScoreEstimator]
  /// The random stream of this update.
  public var rng: RandomGenerator
  private let data: (any DataSource)?
  private var cachedBatch: Batch?
  private var cachedNoise: Tensor?
  private var cachedSamples: Tensor?
  /// Diagnostics logged by the terms, merged into the step's metrics.
  public private(set) var logged: [String: Double] = [:]

  init(
    step: Int, phase: Phase, batchSize: Int, generator: any Generator, teacher: (any Denoiser)?,
    schedule: NoiseSchedule, scores: [String: ScoreEstimator], data: (any DataSource)?, rng: RandomGenerator
  ) {
    self.step = step
    self.phase = phase
    self.batchSize = batchSize
    self.generator = generator
    self.teacher = teacher
    self.schedule = schedule
    self.scores = scores
    self.data = data
    self.rng = rng
  }

  /// The generator's input noise for this update, `[batchSize] + noiseShape` (drawn once).
  public func noise() -> Tensor {
    if let cachedNoise { return cachedNoise }
    let noise = Tensor.normal([batchSize] + generator.noiseShape, using: &rng)
    cachedNoise = noise
    return noise
  }

  /// The generator's samples for ``noise()`` (computed once per update): recording gradients
  /// in the generator phase, detached in an auxiliary phase.
  public func generated() -> Tensor {
    if let cachedSamples { return cachedSamples }
    let noise = noise()
    let samples: Tensor
    switch phase {
    case .generator: samples = generator(noise)
    case .auxiliary: samples = withoutGradients { generator(noise) }.detached()
    }
    cachedSamples = samples
    return samples
  }

  /// The next data batch of ``batchSize`` (drawn once per update).
  /// - Throws: ``DistillError`` when the manifest has no data source, or the source fails.
  public func batch() throws -> Batch {
    if let cachedBatch { return cachedBatch }
    guard let data else {
      throw DistillError.invalidValue(location: "data", expected: "a data source for this loss", found: "none")
    }
    let batch = try data.next(batchSize, using: &rng)
    cachedBatch = batch
    return batch
  }

  /// Records a diagnostic value (e.g. `dm/grad-norm`) for this step's metrics line.
  public func log(_ key: String, _ value: Double) { logged[key] = value }

  /// Uniform integer timesteps in `range`, one per sample.
  public func timesteps(_ count: Int, in range: Range<Int>) -> [Int] {
    rng.integers(count: count, in: range)
  }
}
