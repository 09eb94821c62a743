import ArgumentParser
import DistillCore
import Foundation

/// Writes `message` and a newline to standard error.
func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs a command body with the teacher commands' exit codes: a ``DistillError`` (bad
/// input: a missing file, bad weights, an unsupported config) prints `error: ...` and exits
/// with 2; any other failure prints `error: ...` and exits with 1.
func runReportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as DistillError {
    printError("error: \(error)")
    throw ExitCode(2)
  } catch let error as ExitCode {
    throw error
  } catch {
    printError("error: \(error)")
    throw ExitCode(1)
  }
}
