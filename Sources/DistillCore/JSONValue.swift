import Foundation

/// A parsed JSON document, kept exact so readers can report precisely what they found.
public enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  /// Parses `data` strictly (RFC 8259, duplicate keys rejected, nesting bounded); `source` (a
  /// file name) prefixes an error, which gives the line and column.
  public static func parse(_ data: Data, source: String) throws -> JSONValue {
    guard String(data: data, encoding: .utf8) != nil else {
      throw DistillError.malformed(path: source, detail: "not valid JSON: the text is not UTF-8")
    }
    let node = try data.withUnsafeBytes { bytes in
      var parser = StrictJSONParser(bytes: bytes, path: source, reportsLines: true, requiresDoubleRange: true)
      return try parser.parseAnyDocument()
    }
    return JSONValue(node)
  }

  init(_ node: JSONNode) {
    switch node {
    case .null: self = .null
    case .bool(let b): self = .bool(b)
    // The parser has checked the grammar and (for documents) the range, so this converts.
    case .number(let literal): self = .number(Double(literal) ?? .nan)
    case .string(let s): self = .string(s)
    case .array(let items): self = .array(items.map(JSONValue.init))
    case .object(let pairs): self = .object(Dictionary(pairs.map { ($0.key, JSONValue($0.value)) }, uniquingKeysWith: { a, _ in a }))
    }
  }

  /// `text` as a JSON string literal, escaped as serde_json and Python's safetensors do:
  /// `"`, `\` and control characters only. Every JSON Distillery writes by hand uses it.
  public static func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case "\u{8}": out += "\\b"
      case "\u{C}": out += "\\f"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }

  /// How the value reads in an error message: short, with its JSON type.
  public var summary: String {
    switch self {
    case .null: return "null"
    case .bool(let b): return String(b)
    case .number(let n): return n == n.rounded() && Swift.abs(n) < 1e15 ? String(Int(n)) : String(n)
    case .string(let s): return "\"\(s.count > 40 ? s.prefix(40) + "..." : s)\""
    case .array(let a): return "an array of \(a.count)"
    case .object: return "an object"
    }
  }
}

extension JSONValue: Encodable {
  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    switch self {
    case .null: try container.encodeNil()
    case .bool(let b): try container.encode(b)
    case .number(let n):
      if n == n.rounded() && Swift.abs(n) < 1e15 { try container.encode(Int(n)) } else { try container.encode(n) }
    case .string(let s): try container.encode(s)
    case .array(let a): try container.encode(a)
    case .object(let o): try container.encode(o)
    }
  }
}

/// Reads typed fields of a JSON object, remembering which keys were read so that the rest
/// can be rejected as unknown (with a did-you-mean).
///
/// Errors name `location` (a file, or a file and JSON path) and the key.
public struct JSONObjectReader {
  public let object: [String: JSONValue]
  public let location: String
  private(set) var read: Set<String> = []

  public init(_ value: JSONValue, location: String) throws {
    guard case .object(let object) = value else {
      throw DistillError.invalidValue(location: location, expected: "a JSON object", found: value.summary)
    }
    self.object = object
    self.location = location
  }

  /// The object in the JSON file at `path`; `missing` says why the file matters when it cannot
  /// be read (``DistillError/io(path:reason:)``).
  public init(file path: String, missing: String) throws {
    guard let data = FileManager.default.contents(atPath: path) else { throw DistillError.io(path: path, reason: missing) }
    try self.init(JSONValue.parse(data, source: path), location: path)
  }

  /// Checks a file's `format` and `version` fields, read beforehand (so that unknown keys are
  /// rejected first and a misspelt key is named rather than reported missing).
  public func requireFormat(_ format: String?, _ expected: String, version: Int?, _ expectedVersion: Int) throws {
    guard format == expected else {
      throw DistillError.invalidValue(
        location: "\(location): format", expected: "\"\(expected)\"", found: format.map { "\"\($0)\"" } ?? "nothing")
    }
    guard version == expectedVersion else {
      throw DistillError.invalidValue(
        location: "\(location): version", expected: String(expectedVersion), found: version.map(String.init) ?? "nothing")
    }
  }

  private func fail(_ key: String, _ expected: String, _ found: JSONValue) -> DistillError {
    .invalidValue(location: "\(location): \(key)", expected: expected, found: found.summary)
  }

  /// The raw value, or `nil` when absent or null.
  public mutating func value(_ key: String) -> JSONValue? {
    read.insert(key)
    if let v = object[key], v != .null { return v }
    return nil
  }

  public mutating func int(_ key: String) throws -> Int? {
    guard let v = value(key) else { return nil }
    guard case .number(let n) = v, n == n.rounded(), Swift.abs(n) < 1e15 else { throw fail(key, "an integer", v) }
    return Int(n)
  }

  public mutating func int(_ key: String, default fallback: Int) throws -> Int { try int(key) ?? fallback }

  public mutating func double(_ key: String) throws -> Double? {
    guard let v = value(key) else { return nil }
    guard case .number(let n) = v else { throw fail(key, "a number", v) }
    return n
  }

  /// A number as `Float`; one beyond `Float`'s range throws rather than becoming infinity
  /// (fuzzing found `"norm_eps": 1e40`, an infinite epsilon).
  public mutating func float(_ key: String, default fallback: Float) throws -> Float {
    guard let number = try double(key) else { return fallback }
    let converted = Float(number)
    guard converted.isFinite else {
      throw fail(key, "a number of magnitude below \(Float.greatestFiniteMagnitude)", .number(number))
    }
    return converted
  }

  public mutating func bool(_ key: String, default fallback: Bool) throws -> Bool {
    guard let v = value(key) else { return fallback }
    guard case .bool(let b) = v else { throw fail(key, "true or false", v) }
    return b
  }

  public mutating func string(_ key: String) throws -> String? {
    guard let v = value(key) else { return nil }
    guard case .string(let s) = v else { throw fail(key, "a string", v) }
    return s
  }

  /// A string that must be one of `allowed`.
  public mutating func choice(_ key: String, _ allowed: [String], default fallback: String) throws -> String {
    guard let s = try string(key) else { return fallback }
    guard allowed.contains(s) else {
      throw fail(key, "one of " + allowed.map { "\"\($0)\"" }.joined(separator: ", "), .string(s))
    }
    return s
  }

  /// A string naming a case of `E` (its raw value).
  public mutating func choice<E: CaseIterable & RawRepresentable>(_ key: String, default fallback: E) throws -> E
  where E.RawValue == String {
    guard let s = try string(key) else { return fallback }
    guard let value = E(rawValue: s) else {
      throw fail(key, "one of " + E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "), .string(s))
    }
    return value
  }

  public mutating func intArray(_ key: String) throws -> [Int]? {
    // The same bound as `int`: `Int(n)` traps beyond 2^63 (`[1e300]` crashed a config reader).
    try array(key, "an array of integers") {
      if case .number(let n) = $0, n == n.rounded(), Swift.abs(n) < 1e15 { Int(n) } else { nil }
    }
  }

  public mutating func doubleArray(_ key: String) throws -> [Double]? {
    try array(key, "an array of numbers") { if case .number(let n) = $0 { n } else { nil } }
  }

  public mutating func stringArray(_ key: String) throws -> [String]? {
    try array(key, "an array of strings") { if case .string(let s) = $0 { s } else { nil } }
  }

  /// The array at `key` with each item converted by `element`; an item it refuses (`nil`) is an
  /// error, naming the key and `expected`.
  private mutating func array<T>(_ key: String, _ expected: String, _ element: (JSONValue) -> T?) throws -> [T]? {
    guard let v = value(key) else { return nil }
    guard case .array(let items) = v else { throw fail(key, expected, v) }
    return try items.map { item in
      guard let converted = element(item) else { throw fail(key, expected, v) }
      return converted
    }
  }

  /// Throws for the first key that was never read (ignoring those `ignoring` accepts).
  public func rejectUnknownKeys(ignoring: (String) -> Bool = { _ in false }) throws {
    for key in object.keys.sorted() where !read.contains(key) && !ignoring(key) {
      let suggestion = closestMatch(to: key, among: Array(read)).map { " (did you mean \"\($0)\"?)" } ?? ""
      throw DistillError.invalidValue(
        location: "\(location): \(key)", expected: "a known key\(suggestion)", found: "an unknown key")
    }
  }
}

/// The candidate within a small edit distance of `word`, if any.
public func closestMatch(to word: String, among candidates: [String]) -> String? {
  func distance(_ a: [Character], _ b: [Character]) -> Int {
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
      var current = [i] + Array(repeating: 0, count: b.count)
      for j in 1...max(b.count, 1) where !b.isEmpty {
        current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
      }
      previous = current
    }
    return previous[b.count]
  }
  let w = Array(word.lowercased())
  let scored = candidates.map { ($0, distance(w, Array($0.lowercased()))) }.filter { $0.1 <= Swift.max(2, w.count / 3) }
  return scored.min { $0.1 < $1.1 }?.0
}
