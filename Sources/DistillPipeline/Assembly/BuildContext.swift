import DistillCore
import DistillDiffusion

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
  public internal(set) var data: (any DataSource)?
  public internal(set) var generator: (any Generator)?
  public internal(set) var scores: [String: ScoreEstimator] = [:]
  /// Networks trained beside the generator, in the order they were added.
  public private(set) var networks: [TrainedNetwork] = []
  /// Extra checkpoint state by key prefix.
  public private(set) var checkpointables: [(prefix: String, state: any Checkpointable)] = []

  init(manifest: Manifest, registry: ComponentRegistry, scheduleConfig: ScheduleConfig, prediction: Prediction) {
    self.manifest = manifest
    self.registry = registry
    self.scheduleConfig = scheduleConfig
    self.schedule = scheduleConfig.schedule
    self.prediction = prediction
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

  /// An optimizer from an optimizer entry (the manifest's `optimizer` when `nil`).
  public func makeOptimizer(
    _ entry: ComponentEntry?, parameters: [NamedParameter]
  ) -> (any Optimizer, LearningRateSchedule, Float?) {
    let entry = entry ?? manifest.optimizer
    let type = registry.component(.optimizer, entry.type) as! any OptimizerComponent.Type
    let optimizer = type.make(entry, parameters: parameters)
    let warmup = entry.int("warmupSteps")
    let schedule: LearningRateSchedule
    switch entry.string("schedule") {
    case "warmup": schedule = .linearWarmup(steps: warmup)
    case "cosine":
      schedule = .cosine(
        totalSteps: manifest.training.steps, warmupSteps: warmup, minimumFactor: entry.float("minimumFactor"))
    default: schedule = .constant
    }
    return (optimizer, schedule, entry.optionalDouble("clipGradientNorm").map(Float.init))
  }

  /// Registers a network trained beside the generator, with an optimizer from `optimizer`
  /// (an optimizer entry; the manifest's when `nil`). Names must be unique.
  @discardableResult
  public func addNetwork(name: String, module: Module, optimizer entry: ComponentEntry?) throws -> TrainedNetwork {
    guard name != "generator", !networks.contains(where: { $0.name == name }) else {
      throw DistillError.invalidValue(
        location: manifest.source, expected: "one trained network named \"\(name)\"", found: "two")
    }
    let (optimizer, schedule, clip) = makeOptimizer(entry, parameters: module.namedParameters())
    let network = TrainedNetwork(
      name: name, module: module, optimizer: optimizer, schedule: schedule, clipGradientNorm: clip)
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
