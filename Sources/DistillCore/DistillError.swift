/// The one error type of Distillery: every case carries the context a user needs to act.
public enum DistillError: Error, CustomStringConvertible, Equatable {
  /// A file could not be read or written.
  case io(path: String, reason: String)
  /// A file's content is malformed: `path` names the file, `detail` what is wrong.
  case malformed(path: String, detail: String)
  /// A value in user input is wrong: `location` is a file, JSON path or flag name.
  case invalidValue(location: String, expected: String, found: String)
  /// Weights do not fit a module: every problem is listed.
  case stateDictMismatch(problems: [String])
  /// A tensor shape does not fit an operation.
  case shapeMismatch(operation: String, detail: String)

  public var description: String {
    switch self {
    case .io(let path, let reason): return "\(path): \(reason)"
    case .malformed(let path, let detail): return "\(path): \(detail)"
    case .invalidValue(let location, let expected, let found):
      return "\(location): expected \(expected), found \(found)"
    case .stateDictMismatch(let problems):
      return "weights do not match the module:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    case .shapeMismatch(let operation, let detail): return "\(operation): \(detail)"
    }
  }
}
