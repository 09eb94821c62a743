/// Running the built executables from tests.
///
/// Foundation's `FileHandle.readDataToEndOfFile()` traps (`try!`) when a signal interrupts its
/// `read` (EINTR), which killed a whole test run once; and reading standard output to its end
/// before standard error blocks forever once a child fills the error pipe. Tests run children
/// through ``runChildProcess(_:_:environment:directory:mergingErrors:whileRunning:)`` instead,
/// which reads both pipes at once and retries interrupted reads.

import Dispatch
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// How a child process ended and what it wrote.
public struct ChildProcessResult: Sendable {
  public var status: Int32
  /// Standard output (with standard error too when merged).
  public var output: String
  /// Standard error (empty when merged into the output).
  public var error: String
}

/// Everything readable from `handle` until end of file, retrying reads that a signal interrupts.
public func readToEnd(_ handle: FileHandle) -> Data {
  var data = Data()
  var buffer = [UInt8](repeating: 0, count: 1 << 16)
  let descriptor = handle.fileDescriptor
  while true {
    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
    if count > 0 {
      data.append(contentsOf: buffer[0..<count])
    } else if count == 0 || errno != EINTR {
      return data
    }
  }
}

/// Runs `executable` with `arguments` (in `directory`, with `environment`, the tests' own when
/// nil) and waits for it; `whileRunning` gets the process once started.
public func runChildProcess(
  _ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
  directory: String? = nil,
  mergingErrors: Bool = false, whileRunning: ((Process) -> Void)? = nil
) throws -> ChildProcessResult {
  let process = Process()
  process.executableURL = executable
  process.arguments = arguments
  if let environment { process.environment = environment }
  if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = mergingErrors ? out : err
  try process.run()
  whileRunning?(process)
  nonisolated(unsafe) var errors = Data()
  let group = DispatchGroup()
  if !mergingErrors {
    DispatchQueue.global().async(group: group) { errors = readToEnd(err.fileHandleForReading) }
  }
  let output = readToEnd(out.fileHandleForReading)
  group.wait()
  process.waitUntilExit()
  return ChildProcessResult(
    status: process.terminationStatus, output: String(decoding: output, as: UTF8.self),
    error: String(decoding: errors, as: UTF8.self))
}
