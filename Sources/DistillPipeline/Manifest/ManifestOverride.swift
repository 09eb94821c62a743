import DistillCore

/// A `PATH=VALUE` override of a manifest value (`pipeline run --set`), applied to the JSON before validation
/// (so an override is checked exactly as the file is).
///
/// `PATH` is dotted keys with optional array indices: `training.steps`, `losses[1].weight`,
/// `teacher.means`. `VALUE` is read as JSON when it parses (`200`, `true`, `[[0,0],[1,1]]`,
/// `"text"`), otherwise as a plain string (`name=my-run`). Missing objects on the way
/// are created; an index one past the end appends (`losses[2]={...}` adds a
/// loss), a larger one is an error.
public struct ManifestOverride: Equatable {
  public enum Step: Equatable {
    case key(String)
    case index(Int)
  }

  public let text: String
  public let steps: [Step]
  public let value: JSONValue

  /// - Throws: ``ManifestOverrideError`` when the text is not `PATH=VALUE` or the path is
  ///   malformed.
  public init(parsing text: String) throws {
    self.text = text
    guard let equals = text.firstIndex(of: "=") else {
      throw ManifestOverrideError(text: text, expected: "PATH=VALUE, e.g. training.steps=200", found: "no \"=\"")
    }
    let path = String(text[..<equals])
    let raw = String(text[text.index(after: equals)...])
    steps = try Self.parsePath(path, text: text)
    if let data = raw.data(using: .utf8), let parsed = try? JSONValue.parse(data, source: "override") {
      value = parsed
    } else {
      value = .string(raw)
    }
  }

  static func parsePath(_ path: String, text: String) throws -> [Step] {
    func bad(_ why: String) -> ManifestOverrideError {
      ManifestOverrideError(text: text, expected: "a dotted path such as training.steps or losses[0].weight", found: why)
    }
    guard !path.isEmpty else { throw bad("an empty path") }
    var steps: [Step] = []
    for part in path.split(separator: ".", omittingEmptySubsequences: false) {
      var rest = Substring(part)
      let keyEnd = rest.firstIndex(of: "[") ?? rest.endIndex
      let key = rest[..<keyEnd]
      guard !key.isEmpty else { throw bad("an empty key in \"\(path)\"") }
      steps.append(.key(String(key)))
      rest = rest[keyEnd...]
      while !rest.isEmpty {
        guard rest.first == "[", let close = rest.firstIndex(of: "]"),
          let index = Int(rest[rest.index(after: rest.startIndex)..<close]), index >= 0
        else { throw bad("a malformed index in \"\(path)\"") }
        steps.append(.index(index))
        rest = rest[rest.index(after: close)...]
      }
    }
    return steps
  }

  /// Sets the value in `json`.
  /// - Throws: ``ManifestOverrideError`` when the path crosses
  ///   a value that is not an object or array, or indexes past an array's end.
  public func apply(to json: inout JSONValue) throws {
    try Self.set(value, at: steps[...], in: &json, walked: "", text: text)
  }

  private static func set(
    _ value: JSONValue, at steps: ArraySlice<Step>, in json: inout JSONValue, walked: String, text: String
  ) throws {
    guard let step = steps.first else {
      json = value
      return
    }
    let rest = steps.dropFirst()
    switch step {
    case .key(let key):
      var object: [String: JSONValue]
      switch json {
      case .object(let existing): object = existing
      case .null: object = [:]
      default:
        throw ManifestOverrideError(
          text: text, expected: "\(walked.isEmpty ? "the manifest" : walked) to be an object", found: json.summary)
      }
      var child = object[key] ?? .null
      try set(value, at: rest, in: &child, walked: walked.isEmpty ? key : "\(walked).\(key)", text: text)
      object[key] = child
      json = .object(object)
    case .index(let index):
      guard case .array(var items) = json else {
        throw ManifestOverrideError(text: text, expected: "\(walked) to be an array", found: json.summary)
      }
      guard index <= items.count else {
        throw ManifestOverrideError(
          text: text, expected: "an index of at most \(items.count) for \(walked)", found: String(index))
      }
      if index == items.count { items.append(.null) }
      try set(value, at: rest, in: &items[index], walked: "\(walked)[\(index)]", text: text)
      json = .array(items)
    }
  }
}

/// An override that cannot apply: its text, what was expected and what was found.
public struct ManifestOverrideError: Error, Equatable, CustomStringConvertible {
  public let text: String
  public let expected: String
  public let found: String

  public init(text: String, expected: String, found: String) {
    self.text = text
    self.expected = expected
    self.found = found
  }

  public var description: String { "\(text): expected \(expected), found \(found)" }
}
