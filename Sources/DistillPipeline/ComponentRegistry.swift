import DistillCore

/// The components a `pipeline` knows, by kind and manifest `type` id.
///
/// Registration is by kind: each factory protocol (``TeacherComponent``, ``LossComponent``,
/// ...) files its conformers in the table of its own kind, so that the assembler takes a
/// factory of the right protocol from its table and never casts. The executable builds one
/// registry at start-up from the built-in list plus whatever a user's package adds, and it is
/// not changed afterwards.
public struct ComponentRegistry {
  /// Every registered type by kind and id: for validation, listings and the schema.
  private var described: [ComponentKind: [String: any ComponentDescribing.Type]] = [:]
  var teachers: [String: any TeacherComponent.Type] = [:]
  var schedules: [String: any ScheduleComponent.Type] = [:]
  var generators: [String: any GeneratorComponent.Type] = [:]
  var scores: [String: any ScoreComponent.Type] = [:]
  var losses: [String: any LossComponent.Type] = [:]
  var data: [String: any DataComponent.Type] = [:]
  var metrics: [String: any MetricComponent.Type] = [:]
  var optimizers: [String: any OptimizerComponent.Type] = [:]

  public init() {}

  /// Adds `type` under its kind and id; a second type with the same id is a programmer error.
  public mutating func register(_ type: any ComponentDescribing.Type) {
    precondition(described[type.kind]?[type.id] == nil, "\(type.kind.rawValue) \"\(type.id)\" is registered twice")
    let names = type.allParameters.map(\.name)
    precondition(
      Set(names).count == names.count,
      "\(type.kind.rawValue) \"\(type.id)\" declares a parameter twice, or one every \(type.kind.rawValue) has (\(type.structuralParameters.map(\.name)))")
    described[type.kind, default: [:]][type.id] = type
    type.file(in: &self)
  }

  public mutating func register(_ types: [any ComponentDescribing.Type]) { for t in types { register(t) } }

  public func component(_ kind: ComponentKind, _ id: String) -> (any ComponentDescribing.Type)? { described[kind]?[id] }

  /// The ids of `kind`, sorted.
  public func ids(of kind: ComponentKind) -> [String] { (described[kind] ?? [:]).keys.sorted() }

  /// Every registered type of `kind`, sorted by id.
  public func components(of kind: ComponentKind) -> [any ComponentDescribing.Type] {
    ids(of: kind).compactMap { described[kind]?[$0] }
  }

  /// The factory of a validated `entry` from the table of its kind.
  func factory<Factory>(_ table: KeyPath<ComponentRegistry, [String: Factory]>, for entry: ComponentEntry) -> Factory {
    guard let factory = self[keyPath: table][entry.type] else {
      preconditionFailure("\(entry.path): \"\(entry.type)\" was validated against another registry")
    }
    return factory
  }
}

// Each factory protocol states its kind and files its conformers in its table, so a component
// declares neither, and one that conforms to no factory protocol does not compile.

extension TeacherComponent {
  public static var kind: ComponentKind { .teacher }
  public static func file(in registry: inout ComponentRegistry) { registry.teachers[id] = self }
}

extension ScheduleComponent {
  public static var kind: ComponentKind { .schedule }
  public static func file(in registry: inout ComponentRegistry) { registry.schedules[id] = self }
}

extension GeneratorComponent {
  public static var kind: ComponentKind { .generator }
  public static func file(in registry: inout ComponentRegistry) { registry.generators[id] = self }
}

extension ScoreComponent {
  public static var kind: ComponentKind { .score }
  public static func file(in registry: inout ComponentRegistry) { registry.scores[id] = self }
}

extension LossComponent {
  public static var kind: ComponentKind { .loss }
  public static func file(in registry: inout ComponentRegistry) { registry.losses[id] = self }
  public static var defaultWeight: Double { 1 }
  /// `weight`, which every loss entry has and the trainer applies.
  public static var structuralParameters: [ParameterSpec] {
    [ParameterSpec("weight", .number(0...1e6), default: .number(defaultWeight), "the term's weight in the generator's objective")]
  }
}

extension DataComponent {
  public static var kind: ComponentKind { .data }
  public static func file(in registry: inout ComponentRegistry) { registry.data[id] = self }
}

extension MetricComponent {
  public static var kind: ComponentKind { .metric }
  public static func file(in registry: inout ComponentRegistry) { registry.metrics[id] = self }
}

extension OptimizerComponent {
  public static var kind: ComponentKind { .optimizer }
  public static func file(in registry: inout ComponentRegistry) { registry.optimizers[id] = self }
}
