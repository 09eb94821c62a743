#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A file the harness rewrites with each input, for readers that take a path.
///
/// One per process (the name holds the pid), under `$FUZZ_SCRATCH` or `/dev/shm` so that the
/// write costs a memory copy, not a disk write; removed at exit only by the OS's tmpfs
/// cleanup, so `scripts/fuzz.sh` deletes the folder it made.
public struct ScratchFile: Sendable {
  public let path: String

  /// A scratch path named `name` inside a per-process folder.
  public init(name: String) {
    let base = getenv("FUZZ_SCRATCH").map { String(cString: $0) } ?? "/dev/shm"
    let folder = "\(base)/distillery-fuzz-\(getpid())"
    mkdir(folder, 0o700)
    path = "\(folder)/\(name)"
  }

  /// The folder holding ``path``.
  public var folder: String { String(path[..<path.lastIndex(of: "/")!]) }

  /// Replaces the file's content with `bytes`; traps if it cannot (a harness bug, not a finding).
  public func write(_ bytes: UnsafeRawBufferPointer) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "cannot create \(path)")
    var offset = 0
    while offset < bytes.count {
      let written = writeBytes(fd, bytes.baseAddress! + offset, bytes.count - offset)
      precondition(written > 0, "cannot write \(path)")
      offset += written
    }
    close(fd)
  }
}

/// `write(2)`, named apart from ``ScratchFile/write(_:)``.
private func writeBytes(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
  write(fd, bytes, count)
}
