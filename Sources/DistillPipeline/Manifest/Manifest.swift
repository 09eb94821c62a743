import DistillCore
import Foundation

/// A manifest after validation: every section decoded, every default applied, every path
/// resolved against the manifest's folder.
///
/// ```json
/// {"name": "toy-dmd", "seed": 0,
///  "teacher": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.25},
///  "generator": {"type": "mlp"},
///  "scores": {"real": {"type": "teacher"}, "fake": {"type": "trained"}},
///  "losses": [{"type": "distribution-matching", "real": "real", "fake": "fake"}],
///  "training": {"steps": 2000, "batchSize": 512}}
/// ```
///
/// docs/manifest.md is the reference; `pipeline schema` prints the JSON Schema.
public struct Manifest {
  /// The manifest file, or a description of where the JSON came from.
  public let source: String
  public let baseDirectory: String
  public let name: String
  public let seed: UInt64
  public let teacher: ComponentEntry?
  public let schedule: ComponentEntry
  /// The student; absent only in a manifest read for its data alone (``dataOnly(_:source:baseDirectory:registry:)``).
  public let generator: ComponentEntry?
  /// Score estimators by name, in name order.
  public let scores: [(name: String, entry: ComponentEntry)]
  public let losses: [ComponentEntry]
  public let data: ComponentEntry?
  public let optimizer: ComponentEntry
  public let training: TrainingSettings
  public let evaluation: EvaluationSettings
  public let metrics: [ComponentEntry]
  /// The run folder, absolute.
  public let output: String

  /// The manifest with every default filled in: what the run folder's `manifest.json` holds.
  public let resolvedJSON: JSONValue
}

/// The `training` section.
public struct TrainingSettings: Equatable, Sendable {
  public enum UpdateOrder: String, Sendable, CaseIterable {
    /// Every step runs the auxiliary phases; the generator updates on every k-th step (DMD2).
    case auxiliaryEveryStep = "auxiliary-every-step"
    /// Steps alternate strictly: k steps of auxiliary updates, then one generator step.
    case alternate
  }

  public var steps: Int
  public var batchSize: Int
  public var generatorEvery: Int
  public var updateOrder: UpdateOrder
  public var ema: Double?
  public var checkpointEvery: Int
  public var keepCheckpoints: Int
  public var logEvery: Int
  /// The arithmetic of the training step's products and convolutions (``ComputePrecision``).
  public var precision: ComputePrecision
  /// Which activations the training step keeps for backward (``ActivationRecompute``).
  public var recompute: ActivationRecompute

  static let specs: [ParameterSpec] = [
    ParameterSpec("steps", .integer(1...Int.max), default: .number(1000), "training steps"),
    ParameterSpec("batchSize", .integer(1...Int.max), default: .number(64), "samples per step (per rank under MPI)"),
    ParameterSpec(
      "generatorEvery", .integer(1...Int.max), default: .number(1),
      "k: the generator updates once per k steps (see updateOrder)"),
    .choice(
      "updateOrder", UpdateOrder.self, default: .auxiliaryEveryStep,
      "\"auxiliary-every-step\": auxiliary phases every step, the generator on every k-th; \"alternate\": k auxiliary steps, then one generator step"
    ),
    .optional("ema", .number(0...0.999999), "decay of an exponential moving average of the generator's weights"),
    ParameterSpec("checkpointEvery", .integer(1...Int.max), default: .number(500), "steps between checkpoints"),
    ParameterSpec("keepCheckpoints", .integer(1...Int.max), default: .number(3), "checkpoints kept (the latest)"),
    ParameterSpec("logEvery", .integer(1...Int.max), default: .number(10), "steps between metrics.jsonl lines"),
    .choice(
      "precision", ComputePrecision.self, default: .fp32,
      "\"bf16\": products and convolutions of the training step on bfloat16 operands with float32 accumulation (needs AVX512-BF16); weights, optimizer state, norms, losses and checkpoints stay float32"
    ),
    .choice(
      "recompute", ActivationRecompute.self, default: ActivationRecompute.none,
      "\"blocks\": trained UNets keep only each block's inputs and output and compute its intermediates again during backward (less memory, about a third more time); \"selective\": only norms, activations, concatenations, upsamplings and attention blocks are computed again (about as little memory, 5-8% more time on a 35.7 M-parameter UNet); same gradients either way"
    ),
  ]

  init(_ entry: ComponentEntry) {
    steps = entry.int("steps")
    batchSize = entry.int("batchSize")
    generatorEvery = entry.int("generatorEvery")
    updateOrder = entry.choice("updateOrder")
    ema = entry.optionalDouble("ema")
    checkpointEvery = entry.int("checkpointEvery")
    keepCheckpoints = entry.int("keepCheckpoints")
    logEvery = entry.int("logEvery")
    precision = entry.choice("precision")
    recompute = entry.choice("recompute")
  }

  /// The problem with `precision` on this machine, if any.
  static func precisionProblem(_ entry: ComponentEntry, bf16Supported: Bool) -> ManifestProblem? {
    guard entry.choice("precision") as ComputePrecision == .bf16, !bf16Supported else { return nil }
    return ManifestProblem(
      "training.precision",
      "\"bf16\" needs a CPU with AVX512-BF16 (vdpbf16ps) and Distillery's own product kernel (not DISTILL_GEMM=blas); this machine has neither or not both: use \"fp32\"")
  }

  /// Whether the generator updates at `step` (0-based).
  public func generatorUpdates(at step: Int) -> Bool {
    switch updateOrder {
    case .auxiliaryEveryStep: return step % generatorEvery == generatorEvery - 1
    case .alternate: return step % (generatorEvery + 1) == generatorEvery
    }
  }

  /// Whether the auxiliary phases run at `step`.
  public func auxiliariesUpdate(at step: Int) -> Bool {
    switch updateOrder {
    case .auxiliaryEveryStep: return true
    case .alternate: return !generatorUpdates(at: step)
    }
  }
}

/// The `evaluation` section (its `metrics` are component entries, kept in ``Manifest/metrics``).
public struct EvaluationSettings: Equatable, Sendable {
  public var every: Int
  public var samples: Int
  public var gridSize: Int
  public var seed: UInt64
  public var useEMA: Bool

  static let specs: [ParameterSpec] = [
    ParameterSpec("every", .integer(1...Int.max), default: .number(500), "steps between evaluations (and at the end)"),
    ParameterSpec("samples", .integer(1...Int.max), default: .number(1024), "generated samples the metrics see"),
    ParameterSpec("gridSize", .integer(1...1024), default: .number(64), "samples in each grid image"),
    ParameterSpec("seed", .integer(0...Int.max), default: .number(1234), "seed of the fixed evaluation noise"),
    ParameterSpec("useEMA", .bool, default: .bool(true), "evaluate the EMA weights when training keeps them"),
    ParameterSpec(
      "metrics", .list(of: "metric entries or ids"), default: .array([]),
      "metric entries, or their type ids as strings (\"energy-distance\")"),
  ]

  init(_ entry: ComponentEntry) {
    every = entry.int("every")
    samples = entry.int("samples")
    gridSize = entry.int("gridSize")
    seed = UInt64(entry.int("seed"))
    useEMA = entry.bool("useEMA")
  }
}

/// Every problem found in a manifest, each with its JSON path.
public struct ManifestError: Error, CustomStringConvertible {
  public let source: String
  public let problems: [ManifestProblem]

  public var description: String {
    let head = problems.count == 1 ? "\(source): 1 problem" : "\(source): \(problems.count) problems"
    return ([head] + problems.map { "  \($0)" }).joined(separator: "\n")
  }
}

extension Manifest {
  /// The top-level keys, their meaning and defaults (components' own parameters come from
  /// the registry).
  public static let topLevelSpecs: [ParameterSpec] = [
    .optional("name", .string, "the run's name (default: the manifest's file name)"),
    ParameterSpec("seed", .integer(0...Int.max), default: .number(0), "seed of every random draw of the run"),
    .optional("teacher", .component(.teacher), "the teacher to distil (absent when a teacher is being trained)"),
    ParameterSpec(
      "schedule", .component(.schedule), default: .object(["type": .string("ddpm")]),
      "the noise schedule (a teacher folder brings its own)"),
    ParameterSpec("generator", .component(.generator), "the student network"),
    .optional("scores", .object, "score estimators by name: {\"real\": {...}, \"fake\": {...}}"),
    ParameterSpec("losses", .list(of: "loss entries"), "the loss terms"),
    .optional("data", .component(.data), "training data (images, pairs, a synthetic set)"),
    ParameterSpec(
      "optimizer", .component(.optimizer), default: .object(["type": .string("adam")]),
      "the generator's optimizer"),
    ParameterSpec("training", .object, default: .object([:]), "the training loop (see below)"),
    ParameterSpec("evaluation", .object, default: .object([:]), "evaluation (see below)"),
    .optional("output", .path(mustExist: false), "the run folder (default: runs/<name> beside the manifest)"),
  ]

  /// ``topLevelSpecs`` with the generator and the losses optional: a manifest read for its
  /// data alone.
  static let dataOnlySpecs: [ParameterSpec] = topLevelSpecs.map { spec in
    ["generator", "losses"].contains(spec.name) ? .optional(spec.name, spec.kind, spec.summary) : spec
  }

  /// The manifest of a data entry alone, or of a manifest's `data` entry alone (its other
  /// sections are not read: the classifier `pipeline train-classifier` writes may be what
  /// they name), every other section at its default.
  ///
  /// - Throws: ``ManifestError`` listing the entry's problems; a manifest without `data`.
  public static func dataOnly(
    _ json: JSONValue, source: String, baseDirectory: String, registry: ComponentRegistry
  ) throws -> Manifest {
    guard case .object(let object) = json else {
      throw ManifestError(
        source: source, problems: [.expected("", "a data entry {\"type\": ...} or a manifest", found: json)])
    }
    var entry = json
    if object["type"] == nil {
      guard let data = object["data"] else {
        throw ManifestError(source: source, problems: [ManifestProblem("data", "the manifest has no data entry")])
      }
      entry = data
    }
    return try decode(
      .object(["data": entry]), source: source, baseDirectory: baseDirectory, fallbackName: "data", registry: registry,
      specs: dataOnlySpecs)
  }

  /// Reads, overrides and validates the manifest at `path`.
  ///
  /// - Parameter overrides: `PATH=VALUE` strings (``ManifestOverride``), applied before validation.
  /// - Throws: ``DistillError`` when the file cannot be read or is not JSON (with line and
  ///   column), ``ManifestError`` listing every problem otherwise.
  public static func load(
    path: String, overrides: [String] = [], registry: ComponentRegistry
  ) throws -> Manifest {
    guard let data = FileManager.default.contents(atPath: path) else {
      let exists = FileManager.default.fileExists(atPath: path)
      throw DistillError.io(path: path, reason: exists ? "cannot read the manifest" : "no such manifest file")
    }
    var json = try JSONValue.parse(data, source: path)
    for text in overrides {
      let override = try ManifestOverride(parsing: text)
      try override.apply(to: &json)
    }
    let absolute = URL(fileURLWithPath: path).standardized.path
    let base = (absolute as NSString).deletingLastPathComponent
    let fallbackName = ((absolute as NSString).lastPathComponent as NSString).deletingPathExtension
    return try decode(json, source: path, baseDirectory: base, fallbackName: fallbackName, registry: registry)
  }

  /// Validates a parsed manifest; see ``load(path:overrides:registry:)``.
  ///
  /// `bf16Supported` says whether `training.precision: "bf16"` and `teacher.weightFormat: "bf16"`
  /// can run (this CPU's, unless a test says otherwise).
  public static func decode(
    _ json: JSONValue, source: String, baseDirectory: String, fallbackName: String, registry: ComponentRegistry,
    bf16Supported: Bool = ComputePrecision.bf16Supported
  ) throws -> Manifest {
    try decode(
      json, source: source, baseDirectory: baseDirectory, fallbackName: fallbackName, registry: registry,
      specs: topLevelSpecs, bf16Supported: bf16Supported)
  }

  private static func decode(
    _ json: JSONValue, source: String, baseDirectory: String, fallbackName: String, registry: ComponentRegistry,
    specs: [ParameterSpec], bf16Supported: Bool = ComputePrecision.bf16Supported
  ) throws -> Manifest {
    var problems: [ManifestProblem] = []
    guard case .object(let object) = json else {
      throw ManifestError(source: source, problems: [.expected("", "a JSON object", found: json)])
    }
    // Partial: a bad section is reported and the others are still checked, so one run of
    // `pipeline validate` lists every problem.
    let top = registry.validateParameters(
      object, specs: specs, owner: "the manifest", type: "manifest", path: "", baseDirectory: baseDirectory,
      problems: &problems, partial: true)!

    let name = top.optionalString("name") ?? fallbackName
    let teacher = top.component("teacher")
    let schedule = top.component("schedule")
    let generator = top.component("generator")
    let data = top.component("data")
    let optimizer = top.component("optimizer")

    var scores: [(String, ComponentEntry)] = []
    if case .object(let entries)? = top.object("scores") {
      for key in entries.keys.sorted() {
        if let entry = registry.validateEntry(
          entries[key]!, kind: .score, path: "scores.\(key)", baseDirectory: baseDirectory, problems: &problems)
        {
          scores.append((key, entry))
        }
      }
    }

    if case .array(let items)? = top.values["losses"], items.isEmpty {
      problems.append(ManifestProblem("losses", "expected at least one loss entry"))
    }
    let losses = entries(
      top.values["losses"], kind: .loss, path: "losses", expected: "an array of loss entries", registry, baseDirectory,
      &problems)

    let training = section("training", TrainingSettings.specs, top, registry, baseDirectory, &problems)
    if let training, let problem = TrainingSettings.precisionProblem(training, bf16Supported: bf16Supported) {
      problems.append(problem)
    }
    if let problem = teacherWeightsProblem(teacher, bf16Supported: bf16Supported) { problems.append(problem) }
    let evaluation = section("evaluation", EvaluationSettings.specs, top, registry, baseDirectory, &problems)
    let metrics = entries(
      evaluation?.values["metrics"], kind: .metric, path: "evaluation.metrics",
      expected: "an array of metric entries or ids", registry, baseDirectory, &problems)

    // References between components: every `.reference(section:)` must name an entry.
    let sections: [String: Set<String>] = ["scores": Set(scores.map(\.0))]
    var referencing: [ComponentEntry] = losses + metrics + scores.map(\.1)
    referencing += [teacher, generator, data].compactMap { $0 }
    for entry in referencing {
      guard let type = registry.component(kindOf: entry) else { continue }
      for spec in type.allParameters {
        guard case .reference(let section) = spec.kind, entry.has(spec.name) else { continue }
        let target = entry.string(spec.name)
        let known = sections[section] ?? []
        if !known.contains(target) {
          let suggestion = closestMatch(to: target, among: Array(known)).map { " (did you mean \"\($0)\"?)" } ?? ""
          let list = known.isEmpty ? "\"\(section)\" has no entries" : "known: " + known.sorted().joined(separator: ", ")
          problems.append(
            ManifestProblem("\(entry.path).\(spec.name)", "no \(section) entry \"\(target)\"\(suggestion); \(list)"))
        }
      }
    }

    guard problems.isEmpty, let schedule, let optimizer, let training, let evaluation else {
      throw ManifestError(source: source, problems: problems.map(Self.strippingLeadingDot))
    }
    let output = top.optionalPath("output") ?? resolve("runs/\(name)", against: baseDirectory)

    var resolved: [String: JSONValue] = [
      "name": .string(name), "seed": .number(Double(top.int("seed"))),  // valid: problems is empty
      "schedule": schedule.resolvedJSON,
      "losses": .array(losses.map(\.resolvedJSON)), "optimizer": optimizer.resolvedJSON,
      "training": training.resolvedJSON.removingType,
      "evaluation": evaluation.resolvedJSON.removingType.setting("metrics", .array(metrics.map(\.resolvedJSON))),
      "output": .string(output),
    ]
    if let teacher { resolved["teacher"] = teacher.resolvedJSON }
    if let generator { resolved["generator"] = generator.resolvedJSON }
    if let data { resolved["data"] = data.resolvedJSON }
    if !scores.isEmpty { resolved["scores"] = .object(Dictionary(uniqueKeysWithValues: scores.map { ($0.0, $0.1.resolvedJSON) })) }

    return Manifest(
      source: source, baseDirectory: baseDirectory, name: name, seed: UInt64(top.int("seed")), teacher: teacher,
      schedule: schedule, generator: generator, scores: scores, losses: losses, data: data, optimizer: optimizer,
      training: TrainingSettings(training), evaluation: EvaluationSettings(evaluation), metrics: metrics,
      output: output, resolvedJSON: .object(resolved))
  }

  /// The entries of `kind` in the array `value` at `path` (a metric may be its type id alone),
  /// each validated; a problem saying `expected` when `value` is not an array.
  private static func entries(
    _ value: JSONValue?, kind: ComponentKind, path: String, expected: String, _ registry: ComponentRegistry,
    _ baseDirectory: String, _ problems: inout [ManifestProblem]
  ) -> [ComponentEntry] {
    guard case .array(let items)? = value else {
      if let value, value != .null { problems.append(.expected(path, expected, found: value)) }
      return []
    }
    return items.enumerated().compactMap { index, item in
      var value = item
      if kind == .metric, case .string(let id) = item { value = .object(["type": .string(id)]) }
      return registry.validateEntry(
        value, kind: kind, path: "\(path)[\(index)]", baseDirectory: baseDirectory, problems: &problems)
    }
  }

  private static func section(
    _ key: String, _ specs: [ParameterSpec], _ top: ComponentEntry, _ registry: ComponentRegistry,
    _ baseDirectory: String, _ problems: inout [ManifestProblem]
  ) -> ComponentEntry? {
    guard let value = top.values[key] else { return nil }  // already reported
    guard case .object(let object) = value else {
      problems.append(.expected(key, "an object", found: value))
      return nil
    }
    return registry.validateParameters(
      object, specs: specs, owner: "\"\(key)\"", type: key, path: key, baseDirectory: baseDirectory,
      problems: &problems)
  }

  /// Top-level keys validate with an empty path prefix (`.seed`); reported as `seed`.
  private static func strippingLeadingDot(_ problem: ManifestProblem) -> ManifestProblem {
    problem.path.hasPrefix(".") ? ManifestProblem(String(problem.path.dropFirst()), problem.message) : problem
  }
}

extension JSONValue {
  var removingType: JSONValue {
    guard case .object(var object) = self else { return self }
    object["type"] = nil
    return .object(object)
  }

  func setting(_ key: String, _ value: JSONValue) -> JSONValue {
    guard case .object(var object) = self else { return self }
    object[key] = value
    return .object(object)
  }

  /// Compact JSON text with sorted keys (the encoder's formatting for files people read).
  public func text(pretty: Bool = true) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
  }
}

extension ComponentRegistry {
  /// The registered type of an entry, found by its `type` among every kind.
  func component(kindOf entry: ComponentEntry) -> (any ComponentDescribing.Type)? {
    entry.kind.flatMap { component($0, entry.type) }
  }
}
