/// The components a `pipeline` knows, by kind and manifest `type` id.
///
/// Registration is static: the executable builds one registry at start-up from the built-in
/// list (``ComponentRegistry/builtIn``) plus whatever a user's package adds, and it is not
/// changed afterwards.
public struct ComponentRegistry {
  private var table: [ComponentKind: [String: any ComponentDescribing.Type]] = [:]

  public init() {}

  /// Adds `type` under its kind and id; a second type with the same id is a programmer error.
  public mutating func register(_ type: any ComponentDescribing.Type) {
    precondition(table[type.kind]?[type.id] == nil, "\(type.kind.rawValue) \"\(type.id)\" is registered twice")
    table[type.kind, default: [:]][type.id] = type
  }

  public mutating func register(_ types: [any ComponentDescribing.Type]) { for t in types { register(t) } }

  public func component(_ kind: ComponentKind, _ id: String) -> (any ComponentDescribing.Type)? { table[kind]?[id] }

  /// The ids of `kind`, sorted.
  public func ids(of kind: ComponentKind) -> [String] { (table[kind] ?? [:]).keys.sorted() }

  /// Every registered type of `kind`, sorted by id.
  public func components(of kind: ComponentKind) -> [any ComponentDescribing.Type] {
    ids(of: kind).compactMap { table[kind]?[$0] }
  }
}
