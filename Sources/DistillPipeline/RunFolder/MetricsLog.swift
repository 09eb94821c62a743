import DistillCore
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// One line of `metrics.jsonl`: the step, seconds since the run started, and the metrics.
public struct MetricsRecord: Equatable, Sendable {
  public var step: Int
  public var time: Double
  public var values: [String: Double]
}

/// Appends metrics to a run folder's `metrics.jsonl`, one JSON object per line:
///
///     {"step": 100, "time": 12.5, "loss/dm": 0.0312, "loss/regression": 0.25}
///
/// `step` and `time` come first, then the metric keys in sorted order. Numbers are written in
/// Swift's shortest round-trip form, so ``read(path:)`` gives back the exact `Double`s.
/// JSON has no NaN or infinity, so non-finite values are written as the strings `"nan"`,
/// `"inf"` and `"-inf"`, and read back as `.nan`, `.infinity` and `-.infinity`.
///
/// Each line is written with one `fwrite` and flushed, so a crash loses at most the line
/// being written; ``read(path:)`` skips such a truncated last line, and resuming drops it.
/// Calls are serialized by a lock, so one log may be shared between tasks.
public final class MetricsLog: @unchecked Sendable {
  /// The file written, usually `<run>/metrics.jsonl`.
  public let path: String

  private var file: UnsafeMutablePointer<FILE>?
  private let lock = NSLock()
  private let started = ContinuousClock.now
  private let timeOffset: Double

  /// Opens the log for appending.
  ///
  /// - Parameter step: `nil` starts a fresh log, replacing any file at `path`. A step resumes
  ///   a run from its checkpoint at that step: lines with a greater step (written by the
  ///   crashed run after its checkpoint) and a crash-truncated last line are removed by
  ///   rewriting the file atomically (temporary file, then rename), and `time` goes on from
  ///   the last kept line's time. A missing file starts empty.
  /// - Throws: ``DistillError/io(path:reason:)`` when the file cannot be read or written,
  ///   ``DistillError/malformed(path:detail:)`` when an existing line is not a metrics record.
  public init(path: String, resumingAt step: Int?) throws {
    self.path = path
    var kept: [String] = []
    var offset = 0.0
    if let step, FileManager.default.fileExists(atPath: path) {
      for (record, line) in try Self.parse(path: path) where record.step <= step {
        kept.append(line)
        offset = max(offset, record.time)
      }
    }
    timeOffset = offset
    try AtomicFileWriter.write(Array(kept.map { $0 + "\n" }.joined().utf8), to: path)
    guard let stream = fopen(path, "ab") else {
      throw DistillError.io(path: path, reason: String(cString: strerror(errno)))
    }
    file = stream
  }

  deinit {
    if let file { fclose(file) }
  }

  /// Appends one line for `step` and flushes it to the operating system.
  ///
  /// `time` is the seconds since this log was opened (plus, when resuming, the last kept
  /// line's time), from a monotonic clock, to the microsecond.
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` when a key is `step`
  ///   or `time`, ``DistillError/io(path:reason:)`` when the write fails or the log is closed.
  public func append(step: Int, values: [String: Double]) throws {
    for key in ["step", "time"] where values[key] != nil {
      throw DistillError.invalidValue(
        location: "\(path): metric \"\(key)\"", expected: "a metric name other than step and time",
        found: "the reserved name \"\(key)\"")
    }
    try lock.withLock {
      let elapsed = ContinuousClock.now - started
      let exact = timeOffset + Double(elapsed.components.seconds)
        + Double(elapsed.components.attoseconds) * 1e-18
      let seconds = (exact * 1e6).rounded() / 1e6
      let line = Array(Self.line(MetricsRecord(step: step, time: seconds, values: values)).utf8)
      guard let file else { throw DistillError.io(path: path, reason: "the log is closed") }
      let written = line.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
      guard written == line.count, fflush(file) == 0 else {
        throw DistillError.io(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
      }
    }
  }

  /// Closes the file; later appends throw.
  public func close() {
    lock.withLock {
      if let file { fclose(file) }
      file = nil
    }
  }

  /// Reads every record of a metrics log, in file order.
  ///
  /// Empty lines are ignored, and so is a last line without its newline that does not parse
  /// (a crash cut it short).
  /// - Throws: ``DistillError/io(path:reason:)`` when the file cannot be read, and
  ///   ``DistillError/malformed(path:detail:)``, naming the line, for any other bad line.
  public static func read(path: String) throws -> [MetricsRecord] {
    try parse(path: path).map(\.record)
  }

  // MARK: Format

  /// The JSON line for `record`, newline included.
  static func line(_ record: MetricsRecord) -> String {
    var text = "{\"step\": \(record.step), \"time\": \(number(record.time))"
    for key in record.values.keys.sorted() {
      text += ", \(JSONValue.quoted(key)): \(number(record.values[key]!))"
    }
    return text + "}\n"
  }

  /// A finite number in shortest round-trip form, or `"nan"`, `"inf"`, `"-inf"`.
  static func number(_ value: Double) -> String {
    if value.isNaN { return "\"nan\"" }
    if value.isInfinite { return value < 0 ? "\"-inf\"" : "\"inf\"" }
    return "\(value)"
  }

  /// A number, or one of the strings that stand for non-finite numbers.
  private enum Entry: Decodable {
    case number(Double)
    case string(String)

    init(from decoder: any Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let n = try? container.decode(Double.self) {
        self = .number(n)
      } else {
        self = .string(try container.decode(String.self))
      }
    }

    var value: Double? {
      switch self {
      case .number(let n): return n
      case .string("nan"): return .nan
      case .string("inf"): return .infinity
      case .string("-inf"): return -.infinity
      case .string: return nil
      }
    }
  }

  /// Every record with its line's text (without the newline).
  private static func parse(path: String) throws -> [(record: MetricsRecord, line: String)] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw DistillError.io(path: path, reason: "cannot read the file")
    }
    let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    let complete = data.last == UInt8(ascii: "\n")
    var records: [(record: MetricsRecord, line: String)] = []
    for (index, bytes) in lines.enumerated() where !bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) {
      switch record(Data(bytes)) {
      case .success(let record):
        records.append((record, String(decoding: bytes, as: UTF8.self)))
      case .failure(let problem):
        if index == lines.count - 1 && !complete { continue }  // cut short by a crash
        throw DistillError.malformed(path: path, detail: "line \(index + 1): \(problem.text)")
      }
    }
    return records
  }

  private struct LineProblem: Error {
    var text: String
  }

  /// Decodes one line. (A `Result`, because a `do`/`catch` around the typed-throwing
  /// `decode` inside `parse`'s loop crashed the Swift 6.3 compiler's ownership verifier.)
  private static func record(_ line: Data) -> Result<MetricsRecord, LineProblem> {
    Result { () throws(LineProblem) in try decode(line) }
  }

  private static func decode(_ line: Data) throws(LineProblem) -> MetricsRecord {
    let object: [String: Entry]
    do {
      object = try JSONDecoder().decode([String: Entry].self, from: line)
    } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty {
      let reason = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
      throw LineProblem(text: "not valid JSON" + (reason.map { ": \($0)" } ?? ""))
    } catch {
      throw LineProblem(text: "not a JSON object of numbers and \"nan\", \"inf\", \"-inf\"")
    }
    guard case .number(let s)? = object["step"], let step = Int(exactly: s) else {
      throw LineProblem(text: "\"step\" must be an integer")
    }
    guard let time = object["time"]?.value else {
      throw LineProblem(text: "\"time\" must be a number")
    }
    var values: [String: Double] = [:]
    for (key, entry) in object where key != "step" && key != "time" {
      guard let value = entry.value else {
        throw LineProblem(text: "\"\(key)\" must be a number, \"nan\", \"inf\" or \"-inf\"")
      }
      values[key] = value
    }
    return MetricsRecord(step: step, time: time, values: values)
  }
}
