import ArgumentParser

@main
struct Pipeline: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pipeline",
    abstract: "Distill multi-step diffusion models into one-step generators.",
    subcommands: [BenchCommand.self, LPIPSCommand.self, PredictCommand.self, SampleTeacherCommand.self])
}
