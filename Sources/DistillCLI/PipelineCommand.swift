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
      // ArgumentParser gives a bad flag or argument EX_USAGE (64); a bad flag is bad input
      // like any other, so it gets the CLI's 2 (docs/running.md), with the parser's message.
      if PipelineCommand.exitCode(for: error) == .validationFailure {
        printError(PipelineCommand.fullMessage(for: error))
        exit(2)
      }
      PipelineCommand.exit(withError: error)
    }
    exit(0)
  }
}

/// The registry the commands use: set once at start-up, read-only afterwards.
final class RegistryHolder: @unchecked Sendable {
  static let shared = RegistryHolder()
  private let lock = NSLock()
  private var value: ComponentRegistry?

  func set(_ registry: ComponentRegistry) { lock.withLock { value = registry } }

  var registry: ComponentRegistry {
    lock.withLock {
      if value == nil { value = ComponentRegistry.standard() }
      return value!
    }
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
      CheckpointsCommand.self, TrainClassifierCommand.self,
    ])
}
