import Foundation

/// One problem found in a manifest: where (a JSON path) and what.
public struct ManifestProblem: Error, Equatable, CustomStringConvertible, Sendable {
  public let path: String
  public let message: String

  public init(_ path: String, _ message: String) {
    self.path = path
    self.message = message
  }

  static func expected(_ path: String, _ expected: String, found: JSONValue) -> ManifestProblem {
    ManifestProblem(path, "expected \(expected), found \(found.summary)")
  }

  public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// A component entry of the manifest after validation: its `type`, where it sits, and every
/// declared parameter with defaults applied. Getters do not throw: the values were checked.
public struct ComponentEntry: Sendable {
  public let type: String
  /// The JSON path of the entry, e.g. `losses[1]`.
  public let path: String
  public let values: [String: JSONValue]
  /// Folder of the manifest file, against which relative paths resolve.
  public let baseDirectory: String
  /// The kind of component; `nil` for a fixed section such as `training`.
  public var kind: ComponentKind?

  public func has(_ key: String) -> Bool { values[key].map { $0 != .null } ?? false }

  public func double(_ key: String) -> Double {
    guard case .number(let n) = values[key] else { preconditionFailure("\(path).\(key) is not a validated number") }
    return n
  }

  public func optionalDouble(_ key: String) -> Double? { has(key) ? double(key) : nil }
  public func float(_ key: String) -> Float { Float(double(key)) }
  public func int(_ key: String) -> Int { Int(double(key)) }
  public func optionalInt(_ key: String) -> Int? { has(key) ? int(key) : nil }

  public func bool(_ key: String) -> Bool {
    guard case .bool(let b) = values[key] else { preconditionFailure("\(path).\(key) is not a validated bool") }
    return b
  }

  public func string(_ key: String) -> String {
    guard case .string(let s) = values[key] else { preconditionFailure("\(path).\(key) is not a validated string") }
    return s
  }

  public func optionalString(_ key: String) -> String? { has(key) ? string(key) : nil }

  /// A ``ParameterSpec/choice(_:_:default:_:)`` parameter as its enum case.
  public func choice<E: RawRepresentable>(_ key: String) -> E where E.RawValue == String {
    guard let value = E(rawValue: string(key)) else {
      preconditionFailure("\(path).\(key) was not validated as a choice of \(E.self)")
    }
    return value
  }

  public func optionalChoice<E: RawRepresentable>(_ key: String) -> E? where E.RawValue == String {
    has(key) ? choice(key) : nil
  }

  /// A path parameter resolved against the manifest's folder.
  public func path(_ key: String) -> String { resolve(string(key), against: baseDirectory) }
  public func optionalPath(_ key: String) -> String? { has(key) ? path(key) : nil }

  public func numbers(_ key: String) -> [Double] { Self.numbers(values[key]) }

  public func matrix(_ key: String) -> [[Double]] {
    guard case .array(let rows) = values[key] else { return [] }
    return rows.map(Self.numbers)
  }

  private static func numbers(_ value: JSONValue?) -> [Double] {
    guard case .array(let items) = value else { return [] }
    return items.compactMap { if case .number(let n) = $0 { return n } else { return nil } }
  }

  public func strings(_ key: String) -> [String] {
    guard case .array(let items) = values[key] else { return [] }
    return items.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
  }

  /// A nested component entry, validated with this one.
  public var nested: [String: ComponentEntry] = [:]
  public func component(_ key: String) -> ComponentEntry? { nested[key] }

  public func object(_ key: String) -> JSONValue? { has(key) ? values[key] : nil }

  /// The entry as JSON, with defaults filled in: what the run folder's resolved manifest holds.
  public var resolvedJSON: JSONValue {
    var object = values.filter { $0.value != .null }
    for (key, entry) in nested { object[key] = entry.resolvedJSON }
    object["type"] = .string(type)
    return .object(object)
  }
}

/// `path` made absolute against `base` unless it already is.
public func resolve(_ path: String, against base: String) -> String {
  if path.hasPrefix("/") { return path }
  return URL(fileURLWithPath: base).appendingPathComponent(path).standardized.path
}

extension ComponentRegistry {
  /// Validates `value` as an entry of `kind` at `path`, appending every problem found.
  /// Returns the entry when it has none.
  public func validateEntry(
    _ value: JSONValue, kind: ComponentKind, path: String, baseDirectory: String, problems: inout [ManifestProblem]
  ) -> ComponentEntry? {
    guard case .object(let object) = value else {
      problems.append(.expected(path, "a \(kind.rawValue) entry {\"type\": ...}", found: value))
      return nil
    }
    guard case .string(let id)? = object["type"] else {
      let known = ids(of: kind).map { "\"\($0)\"" }.joined(separator: ", ")
      if let type = object["type"] {
        problems.append(.expected(path + ".type", "a \(kind.rawValue) id, one of \(known)", found: type))
      } else {
        problems.append(ManifestProblem(path, "missing \"type\": one of \(known)"))
      }
      return nil
    }
    guard let type = component(kind, id) else {
      let suggestion = closestMatch(to: id, among: ids(of: kind)).map { " (did you mean \"\($0)\"?)" } ?? ""
      let known = ids(of: kind).map { "\"\($0)\"" }.joined(separator: ", ")
      problems.append(ManifestProblem(path + ".type", "unknown \(kind.rawValue) \"\(id)\"\(suggestion); known: \(known)"))
      return nil
    }
    var entry = validateParameters(
      object, specs: type.allParameters, owner: "\"\(id)\"", type: id, path: path, baseDirectory: baseDirectory,
      problems: &problems)
    entry?.kind = kind
    return entry
  }

  /// Validates the keys of `object` against `specs` (the body of a component entry, or a
  /// fixed section such as `training`), appending every problem found; `owner` names the
  /// object in "unknown parameter of ..." messages. Returns the entry when there is none.
  public func validateParameters(
    _ object: [String: JSONValue], specs: [ParameterSpec], owner: String, type id: String, path: String,
    baseDirectory: String, problems: inout [ManifestProblem], partial: Bool = false
  ) -> ComponentEntry? {
    let before = problems.count
    var values: [String: JSONValue] = [:]
    var nested: [String: ComponentEntry] = [:]
    for key in object.keys.sorted() where key != "type" && !specs.contains(where: { $0.name == key }) {
      let suggestion = closestMatch(to: key, among: specs.map(\.name)).map { " (did you mean \"\($0)\"?)" } ?? ""
      problems.append(ManifestProblem(path.isEmpty ? key : "\(path).\(key)", "unknown parameter of \(owner)\(suggestion)"))
    }
    for spec in specs {
      let here = path.isEmpty ? spec.name : "\(path).\(spec.name)"
      guard let given = object[spec.name] else {
        if let fallback = spec.defaultValue {
          values[spec.name] = fallback
          if case .component(let innerKind) = spec.kind, fallback != .null,
            let inner = validateEntry(fallback, kind: innerKind, path: here, baseDirectory: baseDirectory, problems: &problems)
          {
            nested[spec.name] = inner
          }
        } else {
          problems.append(ManifestProblem(here, "missing required parameter: \(spec.expected); \(spec.summary)"))
        }
        continue
      }
      if given == .null && spec.defaultValue == .null {
        values[spec.name] = .null
        continue
      }
      if let problem = check(given, against: spec, path: here, baseDirectory: baseDirectory) {
        problems.append(problem)
        continue
      }
      // Paths are kept absolute, so that the run folder's manifest.json (what `pipeline sample
      // --run` and `--resume` read back) names the same files from wherever it is read.
      if case .path = spec.kind, case .string(let relative) = given {
        values[spec.name] = .string(resolve(relative, against: baseDirectory))
      } else {
        values[spec.name] = given
      }
      if case .component(let innerKind) = spec.kind,
        let inner = validateEntry(given, kind: innerKind, path: here, baseDirectory: baseDirectory, problems: &problems)
      {
        nested[spec.name] = inner
      }
    }
    guard problems.count == before || partial else { return nil }
    var entry = ComponentEntry(type: id, path: path, values: values, baseDirectory: baseDirectory)
    entry.nested = nested
    return entry
  }

  private func check(_ value: JSONValue, against spec: ParameterSpec, path: String, baseDirectory: String)
    -> ManifestProblem?
  {
    let fail = ManifestProblem.expected(path, spec.expected, found: value)
    switch spec.kind {
    case .number(let range):
      guard case .number(let n) = value, n.isFinite else { return fail }
      return range.contains(n) ? nil : fail
    case .integer(let range):
      guard case .number(let n) = value, n == n.rounded(), abs(n) < 1e15 else { return fail }
      return range.contains(Int(n)) ? nil : fail
    case .bool:
      if case .bool = value { return nil }
      return fail
    case .string, .reference:
      // A reference's target is checked once the whole manifest is read.
      if case .string = value { return nil }
      return fail
    case .choice(let choices):
      guard case .string(let s) = value else { return fail }
      if !choices.values.contains(s) {
        let suggestion = closestMatch(to: s, among: choices.values).map { " (did you mean \"\($0)\"?)" } ?? ""
        return ManifestProblem(path, "expected \(spec.expected), found \(value.summary)\(suggestion)")
      }
      return nil
    case .path(let mustExist):
      guard case .string(let s) = value, !s.isEmpty else { return fail }
      let resolved = resolve(s, against: baseDirectory)
      if mustExist && !FileManager.default.fileExists(atPath: resolved)
        && !ManifestValidation.pathsBeingWritten.contains(URL(fileURLWithPath: resolved).standardized.path)
      {
        return ManifestProblem(path, "no such file or folder: \(resolved)")
      }
      return nil
    case .numbers(let count):
      guard case .array(let items) = value,
        items.allSatisfy({ if case .number(let n) = $0 { return n.isFinite } else { return false } })
      else { return fail }
      if let count, items.count != count { return fail }
      return nil
    case .matrix:
      guard case .array(let rows) = value, !rows.isEmpty else { return fail }
      var width: Int?
      for row in rows {
        guard case .array(let items) = row, !items.isEmpty,
          items.allSatisfy({ if case .number(let n) = $0 { return n.isFinite } else { return false } })
        else { return fail }
        if let width, width != items.count { return ManifestProblem(path, "rows of unequal length (\(width) and \(items.count))") }
        width = items.count
      }
      return nil
    case .strings:
      guard case .array(let items) = value, items.allSatisfy({ if case .string = $0 { return true } else { return false } })
      else { return fail }
      return nil
    case .component, .object:
      if case .object = value { return nil }
      return fail
    case .list:
      if case .array = value { return nil }
      return fail
    }
  }
}

/// Validation settings of the command that reads a manifest.
public enum ManifestValidation {
  /// Absolute paths the running command is about to write, which a manifest may name before
  /// they exist: `pipeline precompute` reads the student manifest whose `regression` loss
  /// names the pairs folder it writes.
  @TaskLocal public static var pathsBeingWritten: Set<String> = []
}

extension ComponentEntry {
  /// The integer timesteps of the `[low, high]` fractions of T under `key` (both ends
  /// included, as the reference code's `randint(min_step, max_step + 1)`), as a half-open range
  /// clamped to `[0, T)`; an error naming `key` unless `0 <= low <= high <= 1`.
  public func timestepRange(_ key: String, trainSteps: Int) throws -> Range<Int> {
    try ComponentEntry.timestepRange(numbers(key), trainSteps: trainSteps, location: "\(path).\(key)")
  }

  /// ``timestepRange(_:trainSteps:)`` of explicit fractions.
  public static func timestepRange(_ fractions: [Double], trainSteps: Int, location: String) throws -> Range<Int> {
    let low = Int((fractions[0] * Double(trainSteps)).rounded())
    let high = min(trainSteps, Int((fractions[1] * Double(trainSteps)).rounded()) + 1)
    guard fractions[0] >= 0, fractions[1] <= 1, fractions[0] <= fractions[1], high > low else {
      throw DistillError.invalidValue(location: location, expected: "0 <= low <= high <= 1", found: "\(fractions)")
    }
    return low..<high
  }
}
