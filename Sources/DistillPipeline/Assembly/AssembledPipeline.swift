import DistillCore
import DistillDiffusion

/// Everything a manifest describes, built and ready to train: the teacher, the generator
/// and its optimizer, the score estimators, the loss terms with their auxiliary phases, the
/// data source and the metrics.
public final class AssembledPipeline {
  public let manifest: Manifest
  public let context: BuildContext
  public let generator: any Generator
  /// The generator's network, optimizer, schedule and clipping (named `generator`).
  public let generatorNetwork: TrainedNetwork
  public let losses: [(entry: ComponentEntry, term: any LossTerm)]
  public let metrics: [(entry: ComponentEntry, metric: any Metric)]

  public var teacher: (any Denoiser)? { context.teacher }
  public var data: (any DataSource)? { context.data }
  public var scores: [String: ScoreEstimator] { context.scores }
  /// Every trained network, the generator first.
  public var networks: [TrainedNetwork] { [generatorNetwork] + context.networks }

  /// The auxiliary phases in the order they run: score estimators' (by name), then loss terms'.
  public var auxiliaryPhases: [any AuxiliaryPhase] {
    manifest.scores.flatMap { context.scores[$0.name]?.trainingPhases ?? [] } + losses.flatMap { $0.term.auxiliaryPhases }
  }

  /// Builds every component of `manifest`.
  ///
  /// - Throws: ``ManifestError`` naming the entry whose build failed (a missing teacher
  ///   folder, weights that do not fit, an incompatible combination) and why.
  public static func assemble(_ manifest: Manifest, registry: ComponentRegistry) throws -> AssembledPipeline {
    func building<T>(_ entry: ComponentEntry, _ body: () throws -> T) throws -> T {
      do {
        return try body()
      } catch let error as DistillError {
        // Components usually name their entry (or a key of it) already: keep that path, once.
        let message = error.description
        if message.hasPrefix(entry.path), let colon = message.range(of: ": ") {
          let path = String(message[..<colon.lowerBound])
          let rest = String(message[colon.upperBound...])
          throw ManifestError(source: manifest.source, problems: [ManifestProblem(path, rest)])
        }
        throw ManifestError(source: manifest.source, problems: [ManifestProblem(entry.path, message)])
      }
    }
    let scheduleType = registry.component(.schedule, manifest.schedule.type) as! any ScheduleComponent.Type
    let (scheduleConfig, prediction) = try building(manifest.schedule) { try scheduleType.make(manifest.schedule) }
    let context = BuildContext(
      manifest: manifest, registry: registry, scheduleConfig: scheduleConfig, prediction: prediction)

    if let entry = manifest.teacher {
      let type = registry.component(.teacher, entry.type) as! any TeacherComponent.Type
      let teacher = try building(entry) { try type.make(entry, context) }
      context.teacher = teacher
      // A teacher brings its own schedule; new networks (generator, fake score) follow it.
      context.schedule = teacher.schedule
      context.prediction = teacher.prediction
      if let savable = teacher as? any SavableDenoiser, let config = savable.scheduleConfig {
        context.scheduleConfig = config
      }
    }
    if let entry = manifest.data {
      let type = registry.component(.data, entry.type) as! any DataComponent.Type
      context.data = try building(entry) { try type.make(entry, context) }
    }
    let generatorType = registry.component(.generator, manifest.generator.type) as! any GeneratorComponent.Type
    let generator = try building(manifest.generator) { try generatorType.make(manifest.generator, context) }
    context.generator = generator
    let (optimizer, schedule, clip) = context.makeOptimizer(nil, parameters: generator.module.namedParameters())
    let generatorNetwork = TrainedNetwork(
      name: "generator", module: generator.module, optimizer: optimizer, schedule: schedule, clipGradientNorm: clip)

    for (name, entry) in manifest.scores {
      let type = registry.component(.score, entry.type) as! any ScoreComponent.Type
      context.scores[name] = try building(entry) { try type.make(entry, context) }
    }
    var losses: [(ComponentEntry, any LossTerm)] = []
    for entry in manifest.losses {
      let type = registry.component(.loss, entry.type) as! any LossComponent.Type
      losses.append((entry, try building(entry) { try type.make(entry, context) }))
    }
    var metrics: [(ComponentEntry, any Metric)] = []
    for entry in manifest.metrics {
      let type = registry.component(.metric, entry.type) as! any MetricComponent.Type
      metrics.append((entry, try building(entry) { try type.make(entry, context) }))
    }
    return AssembledPipeline(
      manifest: manifest, context: context, generator: generator, generatorNetwork: generatorNetwork, losses: losses,
      metrics: metrics)
  }

  private init(
    manifest: Manifest, context: BuildContext, generator: any Generator, generatorNetwork: TrainedNetwork,
    losses: [(ComponentEntry, any LossTerm)], metrics: [(ComponentEntry, any Metric)]
  ) {
    self.manifest = manifest
    self.context = context
    self.generator = generator
    self.generatorNetwork = generatorNetwork
    self.losses = losses.map { (entry: $0.0, term: $0.1) }
    self.metrics = metrics.map { (entry: $0.0, metric: $0.1) }
  }
}
