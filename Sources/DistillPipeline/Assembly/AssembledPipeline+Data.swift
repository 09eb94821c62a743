import DistillCore
import DistillDiffusion

extension AssembledPipeline {
  /// Builds a data source on its own, for commands that need data but no pipeline
  /// (`pipeline train-classifier`).
  ///
  /// - Parameters:
  ///   - json: a data entry (`{"type": "shapes", "size": 16, "classes": 4}`), or a whole
  ///     manifest, whose `data` entry is built (with its teacher, when it has one).
  ///   - source: where the JSON came from, for messages.
  ///   - baseDirectory: against which relative paths of the entry resolve.
  /// - Throws: ``ManifestError`` listing the entry's problems, or naming the entry whose
  ///   build failed; a manifest without `data` is refused.
  public static func makeData(
    _ json: JSONValue, source: String, baseDirectory: String, registry: ComponentRegistry
  ) throws -> (entry: ComponentEntry, data: any DataSource) {
    guard case .object(let object) = json else {
      throw ManifestError(source: source, problems: [.expected("", "a data entry {\"type\": ...} or a manifest", found: json)])
    }
    if object["type"] == nil {
      // A manifest: only its data entry is read (the classifier it trains may be what the
      // rest of the manifest names, not yet written).
      guard let data = object["data"] else {
        throw ManifestError(source: source, problems: [ManifestProblem("data", "the manifest has no data entry")])
      }
      return try makeData(data, source: source, baseDirectory: baseDirectory, registry: registry)
    }
    var problems: [ManifestProblem] = []
    guard
      let entry = registry.validateEntry(json, kind: .data, path: "data", baseDirectory: baseDirectory, problems: &problems),
      let schedule = registry.validateEntry(
        .object(["type": .string("ddpm")]), kind: .schedule, path: "schedule", baseDirectory: baseDirectory,
        problems: &problems),
      let optimizer = registry.validateEntry(
        .object(["type": .string("adam")]), kind: .optimizer, path: "optimizer", baseDirectory: baseDirectory,
        problems: &problems),
      let training = registry.validateParameters(
        [:], specs: TrainingSettings.specs, owner: "training", type: "training", path: "training",
        baseDirectory: baseDirectory, problems: &problems),
      let evaluation = registry.validateParameters(
        [:], specs: EvaluationSettings.specs, owner: "evaluation", type: "evaluation", path: "evaluation",
        baseDirectory: baseDirectory, problems: &problems)
    else {
      throw ManifestError(source: source, problems: problems)
    }
    // A manifest that holds only the data entry, every other section at its default.
    let manifest = Manifest(
      source: source, baseDirectory: baseDirectory, name: "data", seed: 0, teacher: nil, schedule: schedule,
      generator: ComponentEntry(type: "none", path: "generator", values: [:], baseDirectory: baseDirectory),
      scores: [], losses: [], data: entry, optimizer: optimizer, training: TrainingSettings(training),
      evaluation: EvaluationSettings(evaluation), metrics: [], output: baseDirectory,
      resolvedJSON: .object(["data": entry.resolvedJSON]))
    let context = try buildingContext(manifest, registry: registry, withTeacher: false)
    return (entry, try build(entry, context: context, source: source, registry: registry))
  }

  private static func buildingContext(_ manifest: Manifest, registry: ComponentRegistry, withTeacher: Bool) throws
    -> BuildContext
  {
    let scheduleType = registry.component(.schedule, manifest.schedule.type) as! any ScheduleComponent.Type
    let (config, prediction) = try wrapping(manifest.schedule, source: manifest.source) {
      try scheduleType.make(manifest.schedule)
    }
    let context = BuildContext(manifest: manifest, registry: registry, scheduleConfig: config, prediction: prediction)
    if withTeacher, let entry = manifest.teacher {
      let type = registry.component(.teacher, entry.type) as! any TeacherComponent.Type
      let teacher = try wrapping(entry, source: manifest.source) { try type.make(entry, context) }
      context.teacher = teacher
      context.schedule = teacher.schedule
      context.prediction = teacher.prediction
    }
    return context
  }

  private static func build(_ entry: ComponentEntry, context: BuildContext, source: String, registry: ComponentRegistry)
    throws -> any DataSource
  {
    let type = registry.component(.data, entry.type) as! any DataComponent.Type
    let data = try wrapping(entry, source: source) { try type.make(entry, context) }
    context.data = data
    return data
  }

  private static func wrapping<T>(_ entry: ComponentEntry, source: String, _ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as DistillError {
      throw ManifestError(source: source, problems: [ManifestProblem(entry.path, error.description)])
    }
  }
}
