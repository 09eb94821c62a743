import ArgumentParser
import DistillCore
import DistillDiffusion
import DistillDistributed
import DistillPipeline

/// The exit code of a failure, the CLI's whole policy (docs/running.md): 2 for bad input (a
/// ``DistillError``, a ``ManifestError``, a sampling setting or pairs folder refused, a bad flag:
/// a missing file, bad weights, a wrong manifest value; a launch that cannot join its MPI job),
/// 130 for an interrupt, 1 for anything else (a ``RunFailure``, an MPI call that failed).
func exitCode(for error: any Error) -> ExitCode {
  switch error {
  case is ManifestError, is DistillError, is SamplingSettingError, is PairsFolderError, is RunFolder.Refusal,
    is ManifestOverrideError:
    return ExitCode(2)
  case let failure as RunFailure:
    if case .interrupted = failure { return ExitCode(130) }
    return ExitCode(1)
  case let failure as DistributedError:
    switch failure {
    case .mpiUnavailable, .launchMismatch, .invalidLaunchVariable: return ExitCode(2)
    case .mpiCall, .layoutMismatch: return ExitCode(1)
    }
  case let code as ExitCode: return code
  default:
    // ArgumentParser's own errors: a bad flag or argument is bad input like any other (its
    // EX_USAGE, 64, becomes 2); help and version requests keep 0.
    let code = PipelineCommand.exitCode(for: error)
    return code == .validationFailure ? ExitCode(2) : code == .success ? .success : ExitCode(1)
  }
}

/// Runs a command body with the CLI's exit codes (``exitCode(for:)``), printing
/// `error: ...` (``message(for:)``) for every failure but an `ExitCode`.
func runReportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as ExitCode {
    throw error
  } catch {
    printError("error: \(message(for: error))")
    throw exitCode(for: error)
  }
}

/// The flag that asks `pipeline run` for a run-folder mode.
func flag(_ mode: RunFolder.Mode) -> String {
  switch mode {
  case .fresh: return "neither --resume nor --force"
  case .resume: return "--resume"
  case .force: return "--force"
  }
}

/// The flag that sets a sampling setting.
func flag(_ setting: SamplingSettingError.Setting) -> String {
  switch setting {
  case .count: "--count"
  case .sampler: "--sampler"
  case .steps: "--steps"
  case .seed: "--seed"
  case .batchSize: "--batch-size"
  case .shardSize: "--shard-size"
  case .sampleSize: "--size"
  case .guidance: "--guidance"
  case .classLabel: "--class"
  }
}

/// What the CLI prints for a failure: the library's own message, or, for an error about a
/// setting the library names (it never names a flag), the message with the flag that set it.
func message(for error: any Error) -> String {
  switch error {
  case let error as SamplingSettingError:
    return "\(flag(error.setting)): expected \(error.expected), found \(error.found)"
  case let error as PairsFolderError:
    return error.description(replaceHint: " (use --force to replace them)")
  case let error as RunFolder.Refusal:
    return error.description(naming: flag)
  case let error as RunFailure:
    return error.description(naming: flag)
  case let error as ManifestOverrideError:
    return "--set \(error.description)"
  default:
    return "\(error)"
  }
}
