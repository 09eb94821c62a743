import ArgumentParser
import BuiltInComponents
import DistillCore
import DistillPipeline
import Foundation

/// The `pipeline` command line. A user's package that adds components starts it with them:
///
/// ```swift
/// import DistillCLI
/// PipelineCLI.main(extraComponents: [MyLoss.self])
/// ```
public enum PipelineCLI {
  /// Parses the process's arguments and runs the command, with the built-in components plus
  /// `extraComponents` registered; exits the process.
  public static func main(extraComponents: [any ComponentDescribing.Type] = []) -> Never {
    RegistryHolder.shared.set(ComponentRegistry.standard(adding: extraComponents))
    ComputeThreads.applyToBLAS()
    do {
      var command = try PipelineCommand.parseAsRoot()
      try command.run()
    } catch {
      let code = exitCode(for: error)
      // --help and --version print to standard output; ArgumentParser words its own errors.
      if code == .success { PipelineCommand.exit(withError: error) }
      if !(error is ExitCode) { printError(PipelineCommand.fullMessage(for: error)) }
      exit(code.rawValue)
    }
    exit(0)
  }
}

struct PipelineCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pipeline",
    abstract: "Distill multi-step diffusion models into one-step generators.",
    discussion: "Exit codes: 0 success, 2 bad input (manifest, flags, files), 1 runtime failure, 130 interrupted.",
    subcommands: [
      RunCommand.self, ValidateCommand.self, ComponentsCommand.self, SchemaCommand.self, SampleCommand.self,
      LPIPSCommand.self, PrecomputeCommand.self, BenchCommand.self, PredictCommand.self, SampleTeacherCommand.self,
      CheckpointsCommand.self, TrainClassifierCommand.self, ExportCommand.self, GenerateCommand.self,
    ])
}
