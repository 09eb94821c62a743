import ArgumentParser
import DistillCore
import DistillDistributed
import DistillPipeline
import Foundation

/// Writes `message` and a newline to standard error.
func printError(_ message: String) {
  FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// The exit code of a failure: 2 for bad input (a ``DistillError`` or a ``ManifestError``: a
/// missing file, bad weights, a wrong manifest value; a launch that cannot join its MPI job),
/// 130 for an interrupt, 1 for anything else (a ``RunFailure``, an MPI call that failed).
func exitCode(for error: any Error) -> ExitCode {
  switch error {
  case is ManifestError, is DistillError: return ExitCode(2)
  case let failure as RunFailure:
    if case .interrupted = failure { return ExitCode(130) }
    return ExitCode(1)
  case let failure as DistributedError:
    switch failure {
    case .mpiUnavailable, .launchMismatch, .invalidLaunchVariable: return ExitCode(2)
    case .mpiCall, .layoutMismatch: return ExitCode(1)
    }
  case let code as ExitCode: return code
  default: return ExitCode(1)
  }
}

/// Runs a command body with the CLI's exit codes (``exitCode(for:)``), printing
/// `error: ...` for every failure but an `ExitCode`.
func runReportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as ExitCode {
    throw error
  } catch {
    printError("error: \(error)")
    throw exitCode(for: error)
  }
}
