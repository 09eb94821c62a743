import DistillCore
import DistillDiffusion
import DistillNN

// The protocols a pluggable component implements. A component type conforms to
// ``ComponentDescribing`` (its id, kind, parameters) and to the factory protocol of its kind,
// whose `make` turns a validated ``ComponentEntry`` into the object the trainer uses.

/// Builds the teacher: a frozen denoiser with its schedule and parameterisation.
public protocol TeacherComponent: ComponentDescribing {
  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Denoiser
}

/// Builds the student: the network being trained and how noise becomes a sample.
public protocol GeneratorComponent: ComponentDescribing {
  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Generator
}

/// Builds a score estimator (the teacher's, or a trained one).
public protocol ScoreComponent: ComponentDescribing {
  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> ScoreEstimator
}

/// Builds a loss term.
public protocol LossComponent: ComponentDescribing {
  /// The `weight` of an entry that gives none (1 unless the component says otherwise).
  static var defaultWeight: Double { get }
  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm
}

/// Builds a data source.
public protocol DataComponent: ComponentDescribing {
  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource
}

/// Builds an evaluation metric.
public protocol MetricComponent: ComponentDescribing {
  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Metric
}

// MARK: - Runtime objects

/// The student: a trainable network and the map from noise (and, for a class-conditional
/// student, a class per sample) to a sample.
public protocol Generator: AnyObject {
  /// The trained weights; their state dict is `generator.safetensors`.
  var module: Module { get }
  /// The shape of one sample's noise input (`[D]` or `[C, H, W]`).
  var noiseShape: [Int] { get }
  /// The shape of one generated sample.
  var sampleShape: [Int] { get }
  /// The classes of a class-conditional generator; `nil` for an unconditional one (the default).
  var classes: ClassConditioning? { get }
  /// The prompt embeddings a text-conditional generator takes; `nil` for one that takes no
  /// prompts (the default).
  var prompts: PromptConditioning? { get }
  /// What `generator.json` records beside the weights (architecture, timesteps).
  var configJSON: JSONValue { get }
  /// Samples for `noise` of `[N] + noiseShape` and `condition` (a label per row for a
  /// conditional generator), calling `progress(done, total)` after each of its `total` network
  /// evaluations (a few-step sampler's steps), so that long sampling can show progress.
  /// Records gradients when they are enabled.
  func sample(_ noise: Tensor, condition: Condition, progress: (_ done: Int, _ total: Int) -> Void) -> Tensor
}

extension Generator {
  public var classes: ClassConditioning? { nil }
  public var prompts: PromptConditioning? { nil }

  /// Samples for `noise` and `condition` without progress.
  public func callAsFunction(_ noise: Tensor, condition: Condition = .none) -> Tensor {
    sample(noise, condition: condition) { _, _ in }
  }
}

/// A generator whose training samples are made otherwise than by sampling (DMD2's backward
/// simulation): ``StepContext/generated()`` asks it instead of calling it on the noise.
public protocol TrainingSampleGenerator: Generator {
  /// The samples the losses see in this update, for the update's `noise` and `condition`;
  /// per-sample draws come from `context`. Records gradients when they are enabled.
  func trainingSample(_ noise: Tensor, condition: Condition, context: StepContext) -> Tensor
  /// Whether the training samples are made from the data batch (ADD's noised data): a
  /// conditional generator then takes the batch's labels rather than drawn ones.
  var trainsOnData: Bool { get }
  /// How many student steps the training samples are made at, one per row (recorded in
  /// ``StepContext/generatorSteps``); 1 when every training sample is a full sample.
  var trainingSteps: Int { get }
}

extension TrainingSampleGenerator {
  public var trainsOnData: Bool { false }
  public var trainingSteps: Int { 1 }
}

/// A generator that is a denoiser sampled in one or a few steps (DMD's generator, a
/// distilled UNet, a teacher being trained); losses that need the denoiser itself use it.
public protocol DenoiserGenerator: Generator {
  var denoiser: any SavableDenoiser { get }
}

/// A generator that is a KL autoencoder (the first stage of a latent teacher): the
/// `autoencoder` loss trains it on data, and a run writes it as a diffusers `vae/` folder.
public protocol AutoencodingGenerator: Generator {
  var autoencoder: AutoencoderKL { get }
}

/// A denoiser generator sampled at explicit timesteps that a loss may change: progressive
/// distillation trains it for halved step counts round by round, and sets them so that
/// evaluation samples as the generator is being trained.
public protocol SteppedDenoiserGenerator: DenoiserGenerator {
  /// The sampling timesteps, descending in `[0, T)`.
  var timesteps: [Int] { get set }
}

/// A consistency model as the student: f(x, σ) of a trainable denoiser under
/// ``ConsistencyParameterisation`` (consistency distillation trains it).
public protocol ConsistencyModelGenerator: DenoiserGenerator {
  var parameterisation: ConsistencyParameterisation { get }
  /// f(x, σ) for VE states `x`, one σ per sample (recording gradients when they are enabled).
  func consistency(_ x: Tensor, sigmas: [Double], condition: Condition) -> Tensor
}

/// A network trained by the trainer beside the generator (a fake score, a discriminator):
/// its optimizer, learning-rate schedule and gradient clipping come from its entry.
public final class TrainedNetwork {
  /// Checkpoint keys start with it: `network.<name>.`, `optimizer.<name>.`.
  public let name: String
  public let module: Module
  public let optimizer: any Optimizer
  /// The optimizer entry the optimizer, schedule and clipping came from (for a network that
  /// trains beside this one with the same settings: a discriminator head).
  public let optimizerEntry: ComponentEntry?
  public let baseLearningRate: Float
  public let schedule: LearningRateSchedule
  public let clipGradientNorm: Float?

  public init(
    name: String, module: Module, optimizer: any Optimizer, optimizerEntry: ComponentEntry? = nil,
    schedule: LearningRateSchedule = .constant,
    clipGradientNorm: Float? = nil
  ) {
    self.name = name
    self.module = module
    self.optimizer = optimizer
    self.optimizerEntry = optimizerEntry
    self.baseLearningRate = optimizer.learningRate
    self.schedule = schedule
    self.clipGradientNorm = clipGradientNorm
  }
}

/// A score estimator: a denoiser queried for x̂₀, ε̂ or the score at noised samples.
///
/// `real` estimators are frozen (the teacher); a trained one (DMD's fake score) owns a
/// ``TrainedNetwork`` and an ``AuxiliaryPhase`` that fits it to the generator's samples.
public final class ScoreEstimator {
  /// The network, unguided (its features are what a discriminator head may read).
  public let denoiser: any Denoiser
  /// Classifier-free guidance scale applied to this estimator's outputs (1 = none).
  public let guidanceScale: Double
  /// What the losses ask: ``denoiser`` with ``guidanceScale`` (itself at scale 1).
  public let guided: any Denoiser
  public let network: TrainedNetwork?
  public let phases: [any AuxiliaryPhase]
  /// Losses other components add to this estimator's first phase (``join(_:)``).
  public private(set) var joinedLosses: [any JoinedLoss] = []

  public init(
    denoiser: any Denoiser, guidanceScale: Double = 1, network: TrainedNetwork? = nil,
    phases: [any AuxiliaryPhase] = []
  ) {
    self.denoiser = denoiser
    self.guidanceScale = guidanceScale
    self.guided = denoiser.guided(guidanceScale)
    self.network = network
    self.phases = phases
  }

  /// Adds `loss` to the update of this estimator's network (its first phase): DMD2's
  /// discriminator loss joins the fake score's denoising loss in one optimizer step.
  public func join(_ loss: any JoinedLoss) {
    precondition(!phases.isEmpty, "a loss can join only a trained score's update")
    joinedLosses.append(loss)
  }

  /// The phases as the trainer runs them: the first with the joined losses added.
  public var trainingPhases: [any AuxiliaryPhase] {
    guard let first = phases.first, !joinedLosses.isEmpty else { return phases }
    return [JoinedPhase(base: first, joined: joinedLosses)] + phases.dropFirst()
  }
}

/// A loss that joins another network's auxiliary update instead of running one of its own
/// (DMD2's discriminator loss joins the fake score's): its value is added to that phase's
/// loss, and its ``networks`` are stepped in the same update, each with its own optimizer.
public protocol JoinedLoss: AnyObject {
  /// Networks of its own that this loss trains (a classifier head).
  var networks: [TrainedNetwork] { get }
  /// The weighted scalar added to the phase's loss; it may call `context.log`.
  func loss(_ context: StepContext) throws -> Tensor
}

/// A phase with joined losses: the base phase's loss plus theirs, over the base network and
/// theirs.
final class JoinedPhase: AuxiliaryPhase {
  let base: any AuxiliaryPhase
  let joined: [any JoinedLoss]

  init(base: any AuxiliaryPhase, joined: [any JoinedLoss]) {
    self.base = base
    self.joined = joined
  }

  var name: String { base.name }
  var network: TrainedNetwork { base.network }
  var updatesPerStep: Int { base.updatesPerStep }
  var additionalNetworks: [TrainedNetwork] { base.additionalNetworks + joined.flatMap(\.networks) }

  func loss(_ context: StepContext) throws -> Tensor {
    try joined.reduce(try base.loss(context)) { try $0 + $1.loss(context) }
  }
}

/// A term of the generator's objective: a scalar from the step's context, weighted by the
/// manifest's `weight`. Terms with their own networks (a discriminator) add them with
/// ``BuildContext/addNetwork(_:)`` and their updates as ``auxiliaryPhases``.
public protocol LossTerm: AnyObject {
  /// The scalar loss (before the manifest's weight); it may call `context.log` for diagnostics.
  func loss(_ context: StepContext) throws -> Tensor
  /// Updates of other networks that run before the generator's (a discriminator's).
  var auxiliaryPhases: [any AuxiliaryPhase] { get }
}

extension LossTerm {
  public var auxiliaryPhases: [any AuxiliaryPhase] { [] }
}

/// An update of a network other than the generator: the fake score's denoising loss, a
/// discriminator's loss. The trainer runs it `updatesPerStep` times per training step (on
/// steps where auxiliaries run), each time on a fresh batch of detached generator samples.
public protocol AuxiliaryPhase: AnyObject {
  /// The name metrics use: `aux/<name>`.
  var name: String { get }
  /// The network this phase's loss is minimised over.
  var network: TrainedNetwork { get }
  var updatesPerStep: Int { get }
  /// Networks besides ``network`` that this loss also trains in the same update, each stepped
  /// with its own optimizer (default: none).
  var additionalNetworks: [TrainedNetwork] { get }
  /// The scalar loss; `context.generated()` gives detached generator samples.
  func loss(_ context: StepContext) throws -> Tensor
}

extension AuxiliaryPhase {
  public var additionalNetworks: [TrainedNetwork] { [] }
}

/// A component with state beyond its networks that a checkpoint must hold (a data cursor).
public protocol Checkpointable: AnyObject {
  /// Tensors keyed by name (counters as one-element tensors).
  func checkpointState() -> [String: Tensor]
  /// Restores what ``checkpointState()`` wrote; throws ``DistillError`` on a mismatch.
  func restore(_ state: [String: Tensor]) throws
}

/// A batch of training data.
public struct Batch {
  /// Data samples `[N, ...]` (images, points), when the source has them.
  public var samples: Tensor?
  /// Class labels, when the source has them.
  public var labels: [Int]?
  /// Paired inputs (noise of precomputed pairs) for `samples`, when the source has them.
  public var inputs: Tensor?
  /// One prompt embedding per row `[N, L, D]`, when the source has prompts.
  public var embeddings: Tensor?

  public init(samples: Tensor? = nil, labels: [Int]? = nil, inputs: Tensor? = nil, embeddings: Tensor? = nil) {
    self.samples = samples
    self.labels = labels
    self.inputs = inputs
    self.embeddings = embeddings
  }
}

/// Where training data comes from: an image folder, pair shards, a synthetic dataset.
/// A source with a cursor also conforms to ``Checkpointable``.
public protocol DataSource: AnyObject {
  /// The shape of one sample.
  var sampleShape: [Int] { get }
  /// The next `size` samples; randomness (shuffling, synthetic draws) comes from `rng`.
  /// Evaluation draws its reference samples this way.
  func next(_ size: Int, using rng: inout RandomGenerator) throws -> Batch
  /// Rows `rows` of the next training batch of `globalCount` rows (every data-parallel rank
  /// asks for its own rows of the same global batch), row `i` drawing from
  /// `streams[i - rows.lowerBound]`. The default draws each row with `next(1, using:)` from
  /// its stream, right for a source without a cursor; a source with a cursor advances it by
  /// `globalCount` on every rank and returns its rows of that span.
  func next(rows: Range<Int>, of globalCount: Int, streams: inout [RandomGenerator]) throws -> Batch
  /// The names of the classes, label `k` being `labelNames[k]`, for a source with labels;
  /// `nil` for one without (the default).
  var labelNames: [String]? { get }
}

/// A data source that draws from a known Gaussian mixture, so that metrics can read its modes.
public protocol GaussianMixtureDataSource: DataSource {
  var mixture: GaussianMixtureDenoiser { get }
}

/// A data source of prompts (captions), their embeddings computed once by the teacher's text
/// encoder: each batch row carries one prompt's embedding.
public protocol PromptDataSource: DataSource {
  /// The prompts, in the file's order.
  var prompts: [String] { get }
  /// Their embeddings `[prompts, L, D]`.
  var promptEmbeddings: Tensor { get }
  /// The class of each prompt when the prompts name classes (captioned labelled images), so
  /// that metrics judge prompt-following as class accuracy; `nil` (the default) otherwise.
  var promptLabels: [Int]? { get }
}

extension PromptDataSource {
  public var promptLabels: [Int]? { nil }
}

/// A data source whose samples are a fixed, finite set (an image folder, a tensor file), so
/// that a classifier trained on it can hold some of them out.
public protocol FiniteDataSource: DataSource {
  /// How many samples the set holds.
  var count: Int { get }
  /// The samples at `indices`, with their labels, without augmentation.
  func rows(_ indices: [Int]) -> Batch
}

extension DataSource {
  public var labelNames: [String]? { nil }

  public func next(rows: Range<Int>, of globalCount: Int, streams: inout [RandomGenerator]) throws
    -> Batch
  {
    try Batch(concatenating: streams.indices.map { try next(1, using: &streams[$0]) })
  }
}

extension Batch {
  /// The rows of `parts` one after the other; a field is present when every part has it.
  public init(concatenating parts: [Batch]) {
    func join(_ tensors: [Tensor?]) -> Tensor? {
      let present = tensors.compactMap { $0 }
      guard !present.isEmpty, present.count == tensors.count else { return nil }
      return present.count == 1 ? present[0] : Tensor.concat(present, axis: 0)
    }
    let labels = parts.map(\.labels)
    self.init(
      samples: join(parts.map(\.samples)),
      labels: labels.allSatisfy { $0 != nil } && !labels.isEmpty ? labels.flatMap { $0! } : nil,
      inputs: join(parts.map(\.inputs)), embeddings: join(parts.map(\.embeddings)))
  }
}

/// An evaluation metric on generated samples, computed at fixed points with fixed noise.
public protocol Metric: AnyObject {
  /// Values keyed by metric name (`eval/<name>` in metrics.jsonl), e.g. `["energy-distance": 0.01]`.
  func evaluate(_ samples: Tensor, _ context: EvaluationContext) throws -> [String: Double]
}

/// What a metric can use besides the samples.
public final class EvaluationContext {
  public let teacher: (any Denoiser)?
  public let data: (any DataSource)?
  /// Reference samples drawn once per run with a fixed seed (from the data source, or the
  /// teacher's own distribution when it can be sampled exactly), cached by the trainer.
  private let makeReference: (Int) throws -> Batch?
  private var reference: [Int: Batch] = [:]
  private let makeNoise: (() -> Tensor)?
  private var cachedNoise: Tensor?
  /// The class each evaluated sample was asked for, by a class-conditional generator (row `i`
  /// of class `i mod classes`); ``Condition/none`` for an unconditional one.
  public let condition: Condition
  /// The generator's classes, for a class-conditional one.
  public let classes: ClassConditioning?

  /// - Parameter noise: the fixed evaluation noise, row `i` being the generator's input for
  ///   row `i` of the samples metrics get (`nil` when the samples do not come from a generator).
  public init(
    teacher: (any Denoiser)?, data: (any DataSource)?, noise: (() -> Tensor)? = nil,
    condition: Condition = .none, classes: ClassConditioning? = nil,
    referenceBatch: @escaping (Int) throws -> Batch?
  ) {
    self.teacher = teacher
    self.data = data
    self.makeReference = referenceBatch
    self.makeNoise = noise
    self.condition = condition
    self.classes = classes
  }

  /// As the batch initialiser, for a reference without labels.
  public convenience init(
    teacher: (any Denoiser)?, data: (any DataSource)?, noise: (() -> Tensor)? = nil,
    reference: @escaping (Int) throws -> Tensor?
  ) {
    self.init(teacher: teacher, data: data, noise: noise) { count in try reference(count).map { Batch(samples: $0) } }
  }

  /// The generator's input for each evaluated sample, the same on every call: metrics that
  /// compare the generator with the teacher on the same noise use it.
  public var noise: Tensor? {
    if let cachedNoise { return cachedNoise }
    cachedNoise = makeNoise?()
    return cachedNoise
  }

  /// `count` reference samples, the same on every call.
  public func referenceSamples(_ count: Int) throws -> Tensor? { try referenceBatch(count)?.samples }

  /// The classes of the ``referenceSamples(_:)`` rows, when the reference has them.
  public func referenceLabels(_ count: Int) throws -> [Int]? { try referenceBatch(count)?.labels }

  private func referenceBatch(_ count: Int) throws -> Batch? {
    if let cached = reference[count] { return cached }
    let made = try makeReference(count)
    reference[count] = made
    return made
  }
}

/// Receives every logged value and image (metrics.jsonl and TensorBoard are built in).
public protocol MetricSink: AnyObject {
  func record(step: Int, values: [String: Double]) throws
  /// A sample grid, `[3, H, W]` or `[1, H, W]` in [0, 1].
  func image(step: Int, tag: String, _ image: Tensor) throws
  /// Flushes and closes; called once at the end of a run.
  func finish() throws
}
