import ArgumentParser
import DistillCore
import DistillPipeline
import Foundation

/// Writes `message` and a newline to standard error.
func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Runs a command body with the CLI's exit codes: bad input (a ``DistillError`` or a
/// ``ManifestError``: a missing file, bad weights, a wrong manifest value) prints
/// `error: ...` and exits with 2; a ``RunFailure`` exits with 1, or 130 when interrupted;
/// any other failure exits with 1.
func runReportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as ManifestError {
    printError("error: \(error)")
    throw ExitCode(2)
  } catch let error as DistillError {
    printError("error: \(error)")
    throw ExitCode(2)
  } catch let failure as RunFailure {
    printError("error: \(failure)")
    if case .interrupted = failure { throw ExitCode(130) }
    throw ExitCode(1)
  } catch let error as ExitCode {
    throw error
  } catch {
    printError("error: \(error)")
    throw ExitCode(1)
  }
}
