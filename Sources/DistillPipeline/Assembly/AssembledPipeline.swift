import DistillCore
import DistillDiffusion

/// A loss term as the trainer runs it: its manifest path, the name its values are logged
/// under, and the weight the manifest gave it.
public struct AssembledLoss {
  /// The entry's JSON path (`losses[1]`).
  public let path: String
  /// The metric name: the type, with the index when the type appears twice (`loss/<name>`).
  public let name: String
  public let weight: Double
  public let term: any LossTerm
}

/// An evaluation metric with the manifest path it was built from.
public struct AssembledMetric {
  public let path: String
  public let metric: any Metric
}

/// Everything a manifest describes, built and ready to train: the teacher, the generator
/// and its optimizer, the score estimators, the loss terms with their auxiliary phases, the
/// data source and the metrics.
public struct AssembledPipeline {
  public let context: BuildContext
  public let generator: any Generator
  /// The generator's entry (`generator` of the manifest).
  public let generatorEntry: ComponentEntry
  /// The generator's network, optimizer, schedule and clipping (named `generator`).
  public let generatorNetwork: TrainedNetwork

  public var manifest: Manifest { context.manifest }
  public var losses: [AssembledLoss] { context.losses }
  public var metrics: [AssembledMetric] { context.metrics }
  public var teacher: (any Denoiser)? { context.teacher }
  public var data: (any DataSource)? { context.data }
  public var scores: [String: ScoreEstimator] { context.scores }
  /// Every trained network, the generator first.
  public var networks: [TrainedNetwork] { [generatorNetwork] + context.networks }

  /// The auxiliary phases in the order they run: score estimators' (by name), then loss terms'.
  public var auxiliaryPhases: [any AuxiliaryPhase] {
    manifest.scores.flatMap { context.scores[$0.name]?.trainingPhases ?? [] } + losses.flatMap { $0.term.auxiliaryPhases }
  }

  /// Builds every component of `manifest` (``BuildContext/assemble(_:registry:through:)`` to
  /// ``AssemblyStage/all``).
  ///
  /// - Throws: ``ManifestError`` naming the entry whose build failed (a missing teacher
  ///   folder, weights that do not fit, an incompatible combination) and why.
  public static func assemble(_ manifest: Manifest, registry: ComponentRegistry) throws -> AssembledPipeline {
    let context = try BuildContext.assemble(manifest, registry: registry, through: .all)
    guard let generator = context.generator, let entry = manifest.generator, let network = context.generatorNetwork
    else { preconditionFailure("an assembly through .all builds the generator") }
    return AssembledPipeline(context: context, generator: generator, generatorEntry: entry, generatorNetwork: network)
  }

  /// Builds only the teacher of `manifest` (with its schedule), for tools that sample it
  /// without training (`pipeline precompute`).
  ///
  /// - Parameter purpose: what needs the teacher, for the message when there is none
  ///   ("precomputing pairs").
  /// - Throws: ``ManifestError`` when the manifest has no teacher or the teacher's build fails.
  public static func buildTeacher(_ manifest: Manifest, registry: ComponentRegistry, for purpose: String) throws
    -> any Denoiser
  {
    try teacherContext(manifest, registry: registry, for: purpose).teacher
  }

  /// The context built through the teacher, and the teacher, or an error saying `purpose`
  /// needs one.
  private static func teacherContext(_ manifest: Manifest, registry: ComponentRegistry, for purpose: String) throws
    -> (context: BuildContext, teacher: any Denoiser)
  {
    let context = try BuildContext.assemble(manifest, registry: registry, through: .teacher)
    guard let teacher = context.teacher else {
      throw ManifestError(
        source: manifest.source, problems: [ManifestProblem("teacher", "missing: \(purpose) needs a teacher")])
    }
    return (context, teacher)
  }

  /// Builds the teacher and, for a text-to-image teacher, the manifest's data, whose prompts
  /// (a captions source) it samples (`pipeline precompute`).
  ///
  /// - Throws: ``ManifestError`` as ``buildTeacher(_:registry:for:)``, or naming `data` for a
  ///   text-to-image teacher whose manifest's data has no prompts.
  public static func buildTeacherWithPrompts(_ manifest: Manifest, registry: ComponentRegistry, for purpose: String)
    throws -> (teacher: any Denoiser, prompts: (texts: [String], embeddings: Tensor)?)
  {
    let (context, teacher) = try teacherContext(manifest, registry: registry, for: purpose)
    guard teacher.prompts != nil else { return (teacher, nil) }
    try context.buildData()
    guard let captions = context.data as? any PromptDataSource else {
      throw ManifestError(
        source: manifest.source,
        problems: [
          ManifestProblem(
            "data", "expected a captions data source: \(purpose) of the text-to-image teacher needs its prompts")
        ])
    }
    return (teacher, (captions.prompts, captions.promptEmbeddings))
  }

  /// Builds only the data source of a data entry or of a manifest's `data` (with its schedule,
  /// without a teacher), for commands that need data but no pipeline (`pipeline
  /// train-classifier`).
  ///
  /// - Throws: ``ManifestError`` listing the entry's problems or naming the entry whose build
  ///   failed; a manifest without `data` is refused.
  public static func buildData(
    _ json: JSONValue, source: String, baseDirectory: String, registry: ComponentRegistry
  ) throws -> (entry: ComponentEntry, data: any DataSource) {
    let manifest = try Manifest.dataOnly(json, source: source, baseDirectory: baseDirectory, registry: registry)
    let context = try BuildContext.assemble(manifest, registry: registry, through: .data)
    guard let entry = manifest.data, let data = context.data else { preconditionFailure("a data manifest has data") }
    return (entry, data)
  }
}

/// How far ``BuildContext/assemble(_:registry:through:)`` builds a manifest.
public enum AssemblyStage: Sendable {
  /// The schedule and the teacher (`pipeline precompute`).
  case teacher
  /// The schedule and the data source, without a teacher (`pipeline train-classifier`: the
  /// teacher may be what the classifier's run is followed by).
  case data
  /// Everything, in manifest order: schedule, teacher, data, generator, scores, losses,
  /// metrics (`pipeline run`, `pipeline sample`).
  case all

  var buildsTeacher: Bool { self != .data }
  var buildsData: Bool { self != .teacher }
}

extension BuildContext {
  /// The one build order of a manifest, stopping where `stage` says.
  ///
  /// - Throws: ``ManifestError`` naming the entry whose build failed.
  public static func assemble(_ manifest: Manifest, registry: ComponentRegistry, through stage: AssemblyStage) throws
    -> BuildContext
  {
    let context = try BuildContext(manifest: manifest, registry: registry)
    if stage.buildsTeacher, let entry = manifest.teacher {
      let teacher = try context.building(entry) { try registry.factory(\.teachers, for: entry).make(entry, context) }
      context.adopt(teacher)
    }
    if stage.buildsData, context.teacher == nil, let entry = manifest.generator, makesNewTextToImage(entry) {
      context.newTextToImage = try context.building(entry) {
        try context.makeTrainableDenoiser(entry).denoiser as? TextToImageDenoiser
      }
    }
    if stage.buildsData { try context.buildData() }
    guard stage == .all, let entry = manifest.generator else {
      try context.holdingTeacherWeights()
      return context
    }
    let generator = try context.building(entry) { try registry.factory(\.generators, for: entry).make(entry, context) }
    context.generator = generator
    try context.building(entry) { try context.checkClasses() }
    context.generatorNetwork = context.makeNetwork(name: "generator", module: generator.module, optimizer: nil)
    for (name, entry) in manifest.scores {
      context.scores[name] = try context.building(entry) { try registry.factory(\.scores, for: entry).make(entry, context) }
    }
    for entry in manifest.losses {
      let term = try context.building(entry) { try registry.factory(\.losses, for: entry).make(entry, context) }
      let sameType = manifest.losses.filter { $0.type == entry.type }.count
      context.losses.append(
        AssembledLoss(
          path: entry.path, name: sameType > 1 ? "\(entry.type)-\(context.losses.count)" : entry.type,
          weight: entry.double("weight"), term: term))
    }
    for entry in manifest.metrics {
      let metric = try context.building(entry) { try registry.factory(\.metrics, for: entry).make(entry, context) }
      context.metrics.append(AssembledMetric(path: entry.path, metric: metric))
    }
    try context.holdingTeacherWeights()
    return context
  }

  /// ``holdTeacherWeights()`` last, once every copy of the teacher has been made, its failure
  /// reported at the teacher's entry.
  private func holdingTeacherWeights() throws {
    guard let entry = manifest.teacher else { return }
    try building(entry) { try holdTeacherWeights() }
  }

  func building<T>(_ entry: ComponentEntry, _ body: () throws -> T) throws -> T {
    try Self.building(entry, in: manifest, body)
  }

  /// Runs the build of `entry`, mapping a failure to a ``ManifestError`` at the entry's path
  /// (or at the key of it the component named): the one place a build failure gets its path.
  static func building<T>(_ entry: ComponentEntry, in manifest: Manifest, _ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as DistillError {
      let message = error.description
      if message.hasPrefix(entry.path), let colon = message.range(of: ": ") {
        let path = String(message[..<colon.lowerBound])
        throw ManifestError(
          source: manifest.source, problems: [ManifestProblem(path, String(message[colon.upperBound...]))])
      }
      throw ManifestError(source: manifest.source, problems: [ManifestProblem(entry.path, message)])
    }
  }
}

extension AssembledPipeline {
  /// What decodes latent samples to images: a latent teacher, else the generator's new
  /// text-to-image denoiser (a run that trains a latent teacher).
  public var latentDecoder: (any LatentDenoiser)? { teacher as? any LatentDenoiser ?? context.newTextToImage }

  /// `samples` as images: a latent teacher's (or new latent generator's) decoding of them (its
  /// VAE, in [−1, 1]), else themselves. What evaluation, grids and `pipeline sample` show.
  public func images(_ samples: Tensor) -> Tensor {
    guard let latent = latentDecoder else { return samples }
    return withoutGradients { latent.decode(samples) }.detached()
  }
}

extension BuildContext {
  /// Builds the manifest's data source, when it has one, into this context, checked against
  /// the teacher's sample shape.
  func buildData() throws {
    guard let entry = manifest.data else { return }
    let data = try building(entry) { try registry.factory(\.data, for: entry).make(entry, self) }
    // Caught here rather than at the first evaluation: grey files read as RGB for a
    // one-channel teacher, images of another size.
    if let teacher, let shape = teacher.sampleShape, data.sampleShape != shape {
      throw ManifestError(
        source: manifest.source,
        problems: [
          ManifestProblem(
            entry.path,
            "expected samples of the teacher's shape \(shape) (\(teacher.summary)), found \(data.sampleShape)"
              + (data.sampleShape.count == 3 && shape.count == 3 && data.sampleShape[0] != shape[0]
                ? "; image folders take \"channels\": 1 for grey" : ""))
        ])
    }
    self.data = data
  }
}
