import DistillCore
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Writes TensorBoard event files natively: TFRecord framing around hand-encoded
/// `tensorflow.Event` protobufs, readable by `tensorboard --logdir` and its
/// `EventAccumulator`.
///
/// ```swift
/// let board = try TensorBoardWriter(directory: "runs/distill")
/// board.addScalar("loss/train", loss, step: step)
/// board.addImage("samples", pngData: png, height: 64, width: 64, channels: 3, step: step)
/// board.close()
/// ```
///
/// Writes go through a buffered `FILE`; ``flush()`` pushes them to disk on demand, and
/// ``close()`` (or `deinit`) flushes and closes the file. Calls are serialized by a lock, so
/// one writer may be shared between tasks. Writing never throws: the first I/O failure is
/// kept in ``lastError`` and later writes are dropped.
public final class TensorBoardWriter: @unchecked Sendable {
  /// The path of the event file, `<directory>/events.out.tfevents.<unix-seconds>.<hostname>`.
  public let path: String
  /// The first write, flush or close failure, if any; once set, further writes are skipped.
  public var lastError: DistillError? { lock.withLock { error } }

  private var file: UnsafeMutablePointer<FILE>?
  private var error: DistillError?
  private let lock = NSLock()

  /// Creates `directory` if needed, creates the event file in it and writes the initial
  /// `file_version: "brain.Event:2"` event.
  ///
  /// The file is named with the standard pattern `events.out.tfevents.<unix-seconds>.<hostname>`;
  /// if that name is taken (two writers in the same second), `.1`, `.2`, … is appended, which
  /// TensorBoard still recognises (it looks for `tfevents` in the name).
  /// - Throws: ``DistillError/io(path:reason:)`` when the directory or file cannot be created.
  public init(directory: String) throws {
    do {
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw DistillError.io(path: directory, reason: "cannot create directory: \(error)")
    }
    let now = Date().timeIntervalSince1970
    let seconds = Int64(now.rounded(.down))
    let base =
      (directory as NSString).appendingPathComponent(
        "events.out.tfevents.\(String(format: "%010lld", seconds)).\(Self.hostname())")
    var candidate = base
    var attempt = 0
    while true {
      let fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL, 0o644)
      if fd >= 0 {
        guard let stream = fdopen(fd, "wb") else {
          let reason = String(cString: strerror(errno))
          _ = closeDescriptor(fd)
          throw DistillError.io(path: candidate, reason: reason)
        }
        file = stream
        break
      }
      guard errno == EEXIST, attempt < 1000 else {
        throw DistillError.io(path: candidate, reason: String(cString: strerror(errno)))
      }
      attempt += 1
      candidate = "\(base).\(attempt)"
    }
    path = candidate
    write(TensorBoardEvent.fileVersion(wallTime: now))
    flush()
    if let error = lastError { throw error }
  }

  deinit {
    close()
  }

  /// Logs a scalar (a `simple_value` summary, shown on TensorBoard's Scalars tab).
  ///
  /// `value` is stored as a 32-bit float, as the format requires. `wallTime` is seconds
  /// since 1970; it defaults to now.
  public func addScalar(_ tag: String, _ value: Double, step: Int, wallTime: Double? = nil) {
    write(
      TensorBoardEvent.scalar(
        tag: tag, value: Float(value), step: Int64(step),
        wallTime: wallTime ?? Date().timeIntervalSince1970))
  }

  /// Logs an already encoded PNG image (shown on TensorBoard's Images tab).
  ///
  /// `height`, `width` and `channels` describe the image inside `pngData`; `channels` is the
  /// summary's colorspace: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. `wallTime` defaults to now.
  public func addImage(
    _ tag: String, pngData: Data, height: Int, width: Int, channels: Int, step: Int,
    wallTime: Double? = nil
  ) {
    write(
      TensorBoardEvent.image(
        tag: tag, encoded: [UInt8](pngData), height: Int32(clamping: height),
        width: Int32(clamping: width),
        colorspace: Int32(clamping: channels), step: Int64(step),
        wallTime: wallTime ?? Date().timeIntervalSince1970))
  }

  /// Pushes buffered events to disk (`fflush` and `fsync`), so a running TensorBoard sees them.
  public func flush() {
    lock.withLock {
      guard let file, error == nil else { return }
      if fflush(file) != 0 || fsync(fileno(file)) != 0 {
        error = .io(path: path, reason: "flush failed: \(String(cString: strerror(errno)))")
      }
    }
  }

  /// Flushes and closes the file. Later calls, and later writes, do nothing.
  public func close() {
    flush()
    lock.withLock {
      guard let stream = file else { return }
      file = nil
      if fclose(stream) != 0, error == nil {
        error = .io(path: path, reason: "close failed: \(String(cString: strerror(errno)))")
      }
    }
  }

  /// Appends one framed event; a failed write is recorded in ``lastError``.
  private func write(_ event: [UInt8]) {
    let record = TFRecord.frame(event)
    lock.withLock {
      guard let file, error == nil else { return }
      let written = record.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
      if written != record.count {
        error = .io(path: path, reason: "write failed: \(String(cString: strerror(errno)))")
      }
    }
  }

  /// The machine's host name, as TensorFlow puts it in event file names.
  private static func hostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    let name = String(decoding: bytes, as: UTF8.self)
    return name.isEmpty ? "localhost" : name.replacingOccurrences(of: "/", with: "_")
  }
}

/// `close(2)`, which `TensorBoardWriter.close()` shadows inside the class.
private func closeDescriptor(_ fd: Int32) -> Int32 {
  close(fd)
}

// MARK: Events

/// Serializes `tensorflow.Event` messages, field numbers as in TensorFlow's protos:
///
///     Event         { double wall_time = 1; int64 step = 2; string file_version = 3;
///                     Summary summary = 5; }
///     Summary       { repeated Value value = 1; }
///     Summary.Value { string tag = 1; float simple_value = 2; Image image = 4; }
///     Summary.Image { int32 height = 1; int32 width = 2; int32 colorspace = 3;
///                     bytes encoded_image_string = 4; }
///
/// Like protobuf's own serializers, proto3 scalars at their default (zero) are left out,
/// while `simple_value` and `image`, members of a `oneof`, are always written; the output
/// is byte-for-byte what Python's `Event.SerializeToString()` gives.
enum TensorBoardEvent {
  /// The first event of every file: `file_version: "brain.Event:2"`.
  static func fileVersion(wallTime: Double) -> [UInt8] {
    var event = header(wallTime: wallTime, step: 0)
    event.appendString(3, "brain.Event:2")
    return event.bytes
  }

  /// An event holding one `simple_value` summary.
  static func scalar(tag: String, value: Float, step: Int64, wallTime: Double) -> [UInt8] {
    var summaryValue = ProtobufEncoder()
    summaryValue.appendString(1, tag)
    summaryValue.appendFloat(2, value)
    return summaryEvent(summaryValue, step: step, wallTime: wallTime)
  }

  /// An event holding one encoded image summary.
  static func image(
    tag: String, encoded: [UInt8], height: Int32, width: Int32, colorspace: Int32,
    step: Int64, wallTime: Double
  ) -> [UInt8] {
    var image = ProtobufEncoder()
    for (field, value) in [(1, height), (2, width), (3, colorspace)] where value != 0 {
      image.appendInt(field, Int64(value))
    }
    if !encoded.isEmpty { image.appendBytes(4, encoded) }
    var summaryValue = ProtobufEncoder()
    summaryValue.appendString(1, tag)
    summaryValue.appendMessage(4, image)
    return summaryEvent(summaryValue, step: step, wallTime: wallTime)
  }

  /// `wall_time` and `step`, each left out when zero.
  private static func header(wallTime: Double, step: Int64) -> ProtobufEncoder {
    var event = ProtobufEncoder()
    if wallTime != 0 { event.appendDouble(1, wallTime) }
    if step != 0 { event.appendInt(2, step) }
    return event
  }

  /// An event whose summary holds the single value `summaryValue`.
  private static func summaryEvent(
    _ summaryValue: ProtobufEncoder, step: Int64, wallTime: Double
  ) -> [UInt8] {
    var summary = ProtobufEncoder()
    summary.appendMessage(1, summaryValue)
    var event = header(wallTime: wallTime, step: step)
    event.appendMessage(5, summary)
    return event.bytes
  }
}
