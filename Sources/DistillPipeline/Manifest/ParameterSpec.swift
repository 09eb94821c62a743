/// One parameter a component accepts: its manifest key, type, range, default and meaning.
///
/// Components declare their parameters once; manifest validation, `pipeline components`,
/// `pipeline schema` and docs/manifest.md are all derived from these declarations.
public struct ParameterSpec: Sendable {
  public enum Kind: Sendable {
    /// A number within `range` (inclusive).
    case number(ClosedRange<Double>)
    /// An integer within `range`.
    case integer(ClosedRange<Int>)
    case bool
    /// A free string.
    case string
    /// One of an enum's raw values (``ParameterSpec/choice(_:_:default:_:)``): a component
    /// reads it back as the enum with ``ComponentEntry/choice(_:)``.
    case choice(Choices)
    /// A file or folder path, relative to the manifest; `mustExist` checks it before training.
    case path(mustExist: Bool)
    /// An array of numbers, of `count` elements when given.
    case numbers(count: Int?)
    /// An array of equal-length arrays of numbers (points, rows).
    case matrix
    case strings
    /// A nested component entry of `kind` (`{"type": ...}`).
    case component(ComponentKind)
    /// A JSON object passed through unchecked here and checked by the component itself.
    case object
    /// The name of an entry of the manifest's top-level object `section` (e.g. a score
    /// estimator in `scores`).
    case reference(section: String)
    /// An array whose items are checked by the section that holds it (`what` describes them).
    case list(of: String)
  }

  /// The raw values of an enum, in declaration order; made only from the enum, so that a
  /// validated value always reads back as a case.
  public struct Choices: Sendable {
    public let values: [String]

    public init<E: CaseIterable & RawRepresentable>(_ type: E.Type) where E.RawValue == String {
      values = type.allCases.map(\.rawValue)
    }
  }

  public let name: String
  public let kind: Kind
  /// The value when the key is omitted; `nil` makes the parameter required.
  public let defaultValue: JSONValue?
  public let summary: String

  public init(_ name: String, _ kind: Kind, default defaultValue: JSONValue? = nil, _ summary: String) {
    self.name = name
    self.kind = kind
    self.defaultValue = defaultValue
    self.summary = summary
  }

  /// An optional parameter without a default (absent means "not used").
  public static func optional(_ name: String, _ kind: Kind, _ summary: String) -> ParameterSpec {
    ParameterSpec(name, kind, default: .null, summary)
  }

  /// A parameter whose value is one case of `type` (`default` when omitted, required when
  /// `nil`): listings and the schema name every case, and validation refuses any other string.
  public static func choice<E: CaseIterable & RawRepresentable>(
    _ name: String, _ type: E.Type, default value: E?, _ summary: String
  ) -> ParameterSpec where E.RawValue == String {
    ParameterSpec(name, .choice(Choices(type)), default: value.map { .string($0.rawValue) }, summary)
  }

  /// An optional ``choice(_:_:default:_:)`` without a default (absent means "not used").
  public static func optionalChoice<E: CaseIterable & RawRepresentable>(
    _ name: String, _ type: E.Type, _ summary: String
  ) -> ParameterSpec where E.RawValue == String {
    ParameterSpec(name, .choice(Choices(type)), default: .null, summary)
  }

  public var isRequired: Bool { defaultValue == nil }

  /// A short description of the expected value, for errors and listings.
  public var expected: String {
    switch kind {
    case .number(let r):
      return r == -Double.infinity...Double.infinity ? "a number" : "a number in [\(fmt(r.lowerBound)), \(fmt(r.upperBound))]"
    case .integer(let r):
      return r == Int.min...Int.max ? "an integer" : "an integer in [\(r.lowerBound), \(r.upperBound == Int.max ? "inf" : String(r.upperBound))]"
    case .bool: return "true or false"
    case .string: return "a string"
    case .choice(let choices): return "one of " + choices.values.map { "\"\($0)\"" }.joined(separator: ", ")
    case .path: return "a path (string)"
    case .numbers(let count): return count.map { "an array of \($0) numbers" } ?? "an array of numbers"
    case .matrix: return "an array of equal-length arrays of numbers"
    case .strings: return "an array of strings"
    case .component(let kind): return "a \(kind.rawValue) entry {\"type\": ...}"
    case .object: return "an object"
    case .reference(let section): return "the name of an entry of \"\(section)\""
    case .list(let what): return "an array of \(what)"
    }
  }
}

private func fmt(_ x: Double) -> String {
  if x.isInfinite { return x > 0 ? "inf" : "-inf" }
  return x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
}

/// The kinds of pluggable component, each a section or list of the manifest.
public enum ComponentKind: String, Sendable, CaseIterable {
  case teacher, schedule, generator, score, loss, data, metric, optimizer

  /// Where entries of this kind sit in a manifest, for listings.
  public var manifestLocation: String {
    switch self {
    case .teacher: return "teacher"
    case .schedule: return "schedule"
    case .generator: return "generator"
    case .score: return "scores.<name>"
    case .loss: return "losses[i]"
    case .data: return "data"
    case .metric: return "evaluation.metrics[i]"
    case .optimizer: return "optimizer, and the optimizer of a trained network"
    }
  }
}

/// What a component type states about itself for the registry.
///
/// A component conforms to the factory protocol of its kind (``TeacherComponent``,
/// ``LossComponent``, ...), which supplies ``kind`` and ``file(in:)``.
public protocol ComponentDescribing {
  /// The manifest `type` id, lowercase with dashes, declared once.
  static var id: String { get }
  /// One line on what it does.
  static var summary: String { get }
  /// The component's own parameters.
  static var parameters: [ParameterSpec] { get }
  /// The kind, from the factory protocol.
  static var kind: ComponentKind { get }
  /// Parameters every component of the kind has, validated by the manifest layer and applied
  /// by the trainer (a loss's `weight`); none by default.
  static var structuralParameters: [ParameterSpec] { get }
  /// Files the type in the registry's table of its kind (from the factory protocol).
  static func file(in registry: inout ComponentRegistry)
}

extension ComponentDescribing {
  public static var structuralParameters: [ParameterSpec] { [] }
  /// What an entry of this type accepts: the structural parameters, then its own.
  public static var allParameters: [ParameterSpec] { structuralParameters + parameters }
}
