import DistillCore
import DistillDiffusion
import DistillNN

/// What a component's `make` sees: the manifest, the parts built before it, and the means to
/// add networks to the training state. Parts are built in manifest order: schedule, teacher,
/// data, generator, scores, losses, metrics.
public final class BuildContext {
  public let manifest: Manifest
  public let registry: ComponentRegistry
  /// The manifest's schedule; a teacher folder replaces it with its own.
  public internal(set) var scheduleConfig: ScheduleConfig
  public internal(set) var schedule: NoiseSchedule
  /// What new networks predict (the manifest schedule's `prediction`, or the teacher's).
  public internal(set) var prediction: Prediction
  public internal(set) var teacher: (any Denoiser)?
  /// The generator's new text-to-image denoiser (`init` "new", a "stable-diffusion" network),
  /// made before the data so that a captions source embeds its prompts with its text encoder
  /// and encodes its images with its VAE (a run that trains a latent teacher has no teacher).
  public internal(set) var newTextToImage: TextToImageDenoiser?
  public internal(set) var data: (any DataSource)?
  public internal(set) var generator: (any Generator)?
  /// The generator's network (named `generator`), once the generator is built.
  public internal(set) var generatorNetwork: TrainedNetwork?
  public internal(set) var scores: [String: ScoreEstimator] = [:]
  public internal(set) var losses: [AssembledLoss] = []
  public internal(set) var metrics: [AssembledMetric] = []
  /// Networks trained beside the generator, in the order they were added.
  public private(set) var networks: [TrainedNetwork] = []
  /// Extra checkpoint state by key prefix.
  public private(set) var checkpointables: [(prefix: String, state: any Checkpointable)] = []

  /// A context with the manifest's schedule built.
  init(manifest: Manifest, registry: ComponentRegistry) throws {
    self.manifest = manifest
    self.registry = registry
    let entry = manifest.schedule
    let (config, prediction) = try Self.building(entry, in: manifest) {
      try registry.factory(\.schedules, for: entry).make(entry)
    }
    self.scheduleConfig = config
    self.schedule = config.schedule
    self.prediction = prediction
  }

  /// Makes `teacher` the context's teacher: it brings its own schedule, which new networks
  /// (generator, fake score) then follow.
  func adopt(_ teacher: any Denoiser) {
    self.teacher = teacher
    schedule = teacher.schedule
    prediction = teacher.prediction
    if let savable = teacher as? any SavableDenoiser, let config = savable.scheduleConfig {
      scheduleConfig = config
    }
  }

  /// The generator's `type` id, for messages ("none" in an assembly without a generator).
  public var generatorType: String { manifest.generator?.type ?? "none" }

  /// The text-to-image denoiser whose text encoder embeds prompts and whose VAE encodes and
  /// decodes images: the teacher, else the generator's new one.
  public var textToImage: TextToImageDenoiser? { teacher as? TextToImageDenoiser ?? newTextToImage }

  /// The shape of the images metrics see: the generator's (else the data's or the teacher's)
  /// sample shape, decoded by the VAE when a text-to-image denoiser's latents are the samples.
  public var evaluatedShape: [Int]? {
    guard let shape = generator?.sampleShape ?? sampleShape else { return nil }
    guard let latent = textToImage, shape.count == 3 else { return shape }
    let vae = latent.pipeline.vae.config
    let factor = 1 << (vae.blockOutChannels.count - 1)
    return [vae.outChannels, shape[1] * factor, shape[2] * factor]
  }

  /// The shape of one sample: the data's, else the teacher's.
  public var sampleShape: [Int]? { data?.sampleShape ?? teacher?.sampleShape }

  /// A generator for initialising the component at `path`, the same on every run of the
  /// manifest's seed (FNV-1a of the path picks the stream).
  public func initialisationRNG(for path: String) -> RandomGenerator {
    // Top-level entries hash as ".generator", ".teacher", ...: the key they had before their
    // paths lost the leading dot, so the shipped manifests' seeds keep their streams (the toy
    // experiment's real+fake outcome depends on the generator's initialisation).
    let key = path.contains(".") || path.contains("[") ? path : "." + path
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in key.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    return RandomGenerator(seed: manifest.seed).fork(hash)
  }

  /// A network trained with an optimizer from `entry` (an optimizer entry; the manifest's
  /// `optimizer` when `nil`), its learning-rate schedule and clipping; the network keeps the
  /// entry.
  func makeNetwork(name: String, module: Module, optimizer entry: ComponentEntry?) -> TrainedNetwork {
    let entry = entry ?? manifest.optimizer
    let optimizer = registry.factory(\.optimizers, for: entry).make(entry, parameters: module.namedParameters())
    let warmup = entry.int("warmupSteps")
    let schedule: LearningRateSchedule
    switch entry.choice("schedule") as LearningRateScheduleKind {
    case .constant: schedule = .constant
    case .warmup: schedule = .linearWarmup(steps: warmup)
    case .cosine:
      schedule = .cosine(
        totalSteps: manifest.training.steps, warmupSteps: warmup, minimumFactor: entry.float("minimumFactor"))
    }
    return TrainedNetwork(
      name: name, module: module, optimizer: optimizer, optimizerEntry: entry, schedule: schedule,
      clipGradientNorm: entry.optionalDouble("clipGradientNorm").map(Float.init))
  }

  /// Registers a network trained beside the generator, with an optimizer from `optimizer`
  /// (an optimizer entry; the manifest's when `nil`). Names must be unique.
  @discardableResult
  public func addNetwork(name: String, module: Module, optimizer entry: ComponentEntry?) throws -> TrainedNetwork {
    guard name != "generator", !networks.contains(where: { $0.name == name }) else {
      throw DistillError.invalidValue(
        location: manifest.source, expected: "one trained network named \"\(name)\"", found: "two")
    }
    let network = makeNetwork(name: name, module: module, optimizer: entry)
    networks.append(network)
    return network
  }

  /// Adds state a checkpoint must hold, under keys `state.<prefix>.`.
  public func addCheckpointState(prefix: String, _ state: any Checkpointable) {
    checkpointables.append((prefix, state))
  }

  /// The score estimator named `name` (references were checked by manifest validation).
  public func score(_ name: String) -> ScoreEstimator? { scores[name] }

  /// The teacher, or an error naming `entry` when the manifest has none.
  public func requireTeacher(for entry: ComponentEntry) throws -> any Denoiser {
    guard let teacher else {
      throw DistillError.invalidValue(location: entry.path, expected: "a manifest with a teacher", found: "no teacher")
    }
    return teacher
  }

  /// The generator, or an error naming `entry` when the manifest has none.
  public func requireGenerator(for entry: ComponentEntry) throws -> any Generator {
    guard let generator else {
      throw DistillError.invalidValue(location: entry.path, expected: "a generator", found: "none")
    }
    return generator
  }

  /// The generator as a `G` that trains on data of its sample shape (the student a method
  /// needs: a consistency model, a stepped denoiser), or an error at `generator.type` saying
  /// what `expected` is, or naming `entry` when the data do not fit.
  public func requireGenerator<G>(as type: G.Type, _ expected: String, for entry: ComponentEntry) throws -> G {
    guard let generator = generator as? G, let sampleShape = (generator as? any Generator)?.sampleShape else {
      throw DistillError.invalidValue(location: "generator.type", expected: expected, found: "\"\(generatorType)\"")
    }
    try requireData(for: entry, shape: sampleShape)
    return generator
  }

  /// The teacher and the generator, or an error naming `entry` unless the generator maps noise
  /// of the teacher's sample size to samples of its shape (terms that run both on the same
  /// noise: knowledge distillation, the teacher-student distance).
  public func requireGeneratorOnTeacherNoise(for entry: ComponentEntry) throws -> (any Denoiser, any Generator) {
    let teacher = try requireTeacher(for: entry)
    guard let generator, let sampleShape = teacher.sampleShape,
      generator.noiseShape.reduce(1, *) == sampleShape.reduce(1, *), generator.sampleShape == sampleShape
    else {
      throw DistillError.invalidValue(
        location: entry.path,
        expected: "a generator whose noise and samples have the teacher's sample shape \(teacher.sampleShape ?? [])",
        found: "noise \(generator?.noiseShape ?? []), samples \(generator?.sampleShape ?? [])")
    }
    return (teacher, generator)
  }

  /// What a discriminator of `entry` on `source`'s features needs: the features, or an error at
  /// `location` saying `expected` unless `source`'s network exposes them; and the generator's
  /// sample shape, with the data checked against it.
  public func requireFeatures(
    of source: any Denoiser, at location: String, expected: String, for entry: ComponentEntry
  ) throws -> (features: any FeatureTapping, sampleShape: [Int]) {
    guard let features = source as? any FeatureTapping else {
      throw DistillError.invalidValue(location: location, expected: expected, found: "\"\(source.summary)\"")
    }
    let sampleShape = try requireGenerator(for: entry).sampleShape
    try requireData(for: entry, shape: sampleShape)
    return (features, sampleShape)
  }

  /// The data source, or an error naming `entry` when there is none or (given `shape`) its
  /// samples have another shape.
  @discardableResult
  public func requireData(for entry: ComponentEntry, shape: [Int]? = nil) throws -> any DataSource {
    guard let data else {
      throw DistillError.invalidValue(location: entry.path, expected: "a manifest with a data source", found: "no data")
    }
    if let shape, data.sampleShape != shape {
      throw DistillError.invalidValue(
        location: entry.path, expected: "data of the generator's sample shape \(shape)", found: "\(data.sampleShape)")
    }
    return data
  }
}
