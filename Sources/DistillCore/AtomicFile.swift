#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Replaces a file whole: readers see the old content or the new, never a mix, and a failed
/// write leaves the old file as it was.
///
/// Bytes go to a temporary file beside the target (`.<name>.tmp-<pid>-<random>`); ``commit()``
/// syncs it, renames it over the target and syncs the folder. A writer dropped without a
/// commit removes its temporary file. Every file Distillery writes goes through here.
///
/// ```swift
/// let file = try AtomicFileWriter(path: "weights.safetensors")
/// try file.write(header)
/// try file.write(data)
/// try file.commit()
/// ```
public final class AtomicFileWriter {
  public let path: String
  public let temporaryPath: String
  private var descriptor: Int32
  private var committed = false

  /// Creates the temporary file. Throws ``DistillError/io(path:reason:)`` naming `path`.
  public init(path: String) throws {
    guard !path.isEmpty, !path.hasSuffix("/") else { throw DistillError.io(path: path, reason: "not a file path") }
    self.path = path
    temporaryPath = Self.makeTemporaryPath(beside: path)
    descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw Self.failure(path, "cannot create \(temporaryPath)") }
  }

  deinit {
    if !committed {
      if descriptor >= 0 { close(descriptor) }
      unlink(temporaryPath)
    }
  }

  /// Appends `bytes`, retrying short writes and interruptions.
  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    var offset = 0
    while offset < bytes.count {
      let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
      if written < 0 && errno == EINTR { continue }
      guard written > 0 else { throw Self.failure(path, "write failed") }
      offset += written
    }
  }

  public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

  /// Syncs the data, renames the file over ``path`` and syncs the folder (best effort: some
  /// file systems refuse to sync a directory).
  public func commit() throws {
    guard fsync(descriptor) == 0 else { throw Self.failure(path, "cannot sync the written data") }
    let result = close(descriptor)
    descriptor = -1
    guard result == 0 else { throw Self.failure(path, "cannot close the written file") }
    try Self.moveIntoPlace(temporaryPath, path)
    committed = true
  }

  /// Writes `bytes` to `path` atomically.
  public static func write(_ bytes: [UInt8], to path: String) throws {
    let file = try AtomicFileWriter(path: path)
    try file.write(bytes)
    try file.commit()
  }

  /// For writers that need a path of their own (C libraries): `body` writes a complete file at
  /// the temporary path it is given, which then replaces `path`; on error it is removed.
  public static func replace(_ path: String, writing body: (String) throws -> Void) throws {
    guard !path.isEmpty, !path.hasSuffix("/") else { throw DistillError.io(path: path, reason: "not a file path") }
    let temporary = makeTemporaryPath(beside: path)
    do {
      try body(temporary)
      try moveIntoPlace(temporary, path)
    } catch {
      unlink(temporary)
      throw error
    }
  }

  private static func moveIntoPlace(_ temporary: String, _ path: String) throws {
    guard rename(temporary, path) == 0 else { throw failure(path, "cannot move \(temporary) into place") }
    syncFolder(path.lastIndex(of: "/").map { String(path[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? ".")
  }

  /// Syncs the folder at `path`, so that renames and new entries in it survive a crash (best
  /// effort: some file systems refuse to sync a directory).
  public static func syncFolder(_ path: String) {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return }
    _ = fsync(descriptor)
    close(descriptor)
  }

  /// A hidden, unique name beside `path`: `.<name>.tmp-<pid>-<random>`.
  public static func makeTemporaryPath(beside path: String) -> String {
    let slash = path.lastIndex(of: "/")
    let folder = slash.map { String(path[...$0]) } ?? ""
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    return "\(folder).\(name).tmp-\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
  }

  private static func failure(_ path: String, _ what: String) -> DistillError {
    .io(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
  }
}
