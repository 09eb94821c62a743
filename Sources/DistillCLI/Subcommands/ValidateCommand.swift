import ArgumentParser
import DistillPipeline

struct ValidateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate",
    abstract:
      "Check a manifest without training: ids, parameters, references, files and teacher weights.",
    discussion: "Every problem is printed with its JSON path; exit code 2 when there is any.")

  @OptionGroup var options: ManifestOptions

  func run() throws {
    try runReportingErrors {
      let registry = RegistryHolder.shared.registry
      let manifest = try options.load()
      let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
      print("\(options.manifest): valid")
      if let teacher = pipeline.teacher { print("  teacher:   \(teacher.summary)") }
      print(
        "  generator: \(pipeline.generatorEntry.type), \(pipeline.generator.module.parameterCount) parameters, samples \(pipeline.generator.sampleShape)"
      )
      print("  losses:    \(manifest.losses.map(\.type).joined(separator: ", "))")
      for network in pipeline.networks.dropFirst() {
        print("  trains:    \(network.name), \(network.module.parameterCount) parameters")
      }
      print("  training:  \(manifest.training.steps) steps of \(manifest.training.batchSize)")
      print("  output:    \(manifest.output)")
    }
  }
}
