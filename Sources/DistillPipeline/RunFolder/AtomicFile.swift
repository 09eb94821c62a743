import DistillCore
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Replaces files whole: readers see the old content or the new, never a mix.
enum AtomicFile {
  /// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
  /// - Throws: ``DistillError/io(path:reason:)`` when any step fails; the temporary file is
  ///   removed and `path` is left as it was.
  static func write(_ bytes: [UInt8], to path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let name = (path as NSString).lastPathComponent
    let temporary = (directory.isEmpty ? "" : directory + "/") + ".\(name).tmp-\(getpid())"
    func failure(_ what: String) -> DistillError {
      .io(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw failure("cannot create \(temporary)") }
    var offset = 0
    while offset < bytes.count {
      let written = bytes.withUnsafeBytes { buffer in
        posixWrite(fd, buffer.baseAddress! + offset, buffer.count - offset)
      }
      if written < 0 && errno == EINTR { continue }
      guard written > 0 else {
        let error = failure("write failed")
        _ = posixClose(fd)
        unlink(temporary)
        throw error
      }
      offset += written
    }
    guard fsync(fd) == 0 else {
      let error = failure("fsync failed")
      _ = posixClose(fd)
      unlink(temporary)
      throw error
    }
    guard posixClose(fd) == 0 else {
      let error = failure("close failed")
      unlink(temporary)
      throw error
    }
    guard rename(temporary, path) == 0 else {
      let error = failure("cannot rename \(temporary) over it")
      unlink(temporary)
      throw error
    }
  }

  /// Writes `text` as UTF-8; see ``write(_:to:)-([UInt8],_)``.
  static func write(_ text: String, to path: String) throws {
    try write(Array(text.utf8), to: path)
  }
}

/// `write(2)` and `close(2)`, which `AtomicFile.write` shadows inside the enum.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
  write(fd, buffer, count)
}

private func posixClose(_ fd: Int32) -> Int32 {
  close(fd)
}
