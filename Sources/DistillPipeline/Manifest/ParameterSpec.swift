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
    /// A string; one of `choices` when given.
    case string(choices: [String]?)
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

  public var isRequired: Bool { defaultValue == nil }

  /// A short description of the expected value, for errors and listings.
  public var expected: String {
    switch kind {
    case .number(let r):
      return r == -Double.infinity...Double.infinity ? "a number" : "a number in [\(fmt(r.lowerBound)), \(fmt(r.upperBound))]"
    case .integer(let r):
      return r == Int.min...Int.max ? "an integer" : "an integer in [\(r.lowerBound), \(r.upperBound == Int.max ? "inf" : String(r.upperBound))]"
    case .bool: return "true or false"
    case .string(let choices):
      return choices.map { "one of " + $0.map { "\"\($0)\"" }.joined(separator: ", ") } ?? "a string"
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
public protocol ComponentDescribing {
  /// The manifest `type` id, lowercase with dashes, declared once.
  static var id: String { get }
  static var kind: ComponentKind { get }
  /// One line on what it does.
  static var summary: String { get }
  static var parameters: [ParameterSpec] { get }
}
