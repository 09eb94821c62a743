import ArgumentParser
import CProcess
import DistillCore
import DistillPipeline
import Foundation

/// Options shared by the commands that read a manifest.
struct ManifestOptions: ParsableArguments {
  @Argument(help: "The manifest (JSON); see docs/manifest.md.")
  var manifest: String

  @Option(
    name: .customLong("set"), parsing: .unconditionalSingleValue,
    help: ArgumentHelp("Override a manifest value, e.g. --set training.steps=200 (repeatable).", valueName: "PATH=VALUE"))
  var overrides: [String] = []

  func load() throws -> Manifest {
    try Manifest.load(path: manifest, overrides: overrides, registry: RegistryHolder.shared.registry)
  }
}

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Validate a manifest, then train it in its run folder.",
    discussion: """
      The run folder (the manifest's "output", or --output) receives the resolved manifest, checkpoints,
      metrics.jsonl, TensorBoard events, sample grids, report.html and the final generator. A folder holding a
      run is refused unless --resume (continue from its latest checkpoint) or --force (replace it).
      --resume on a run that stopped before its first checkpoint starts it again from step 0.
      Ctrl-C finishes the current step, writes a checkpoint and exits with 130; continue with --resume.
      """)

  @OptionGroup var options: ManifestOptions

  @Option(help: "The run folder (overrides the manifest's \"output\").")
  var output: String?

  @Flag(help: "Continue the run in the output folder from its latest checkpoint (from step 0 when it has none yet).")
  var resume = false

  @Flag(help: "Replace a run already in the output folder.")
  var force = false

  @Flag(help: "Print no progress.")
  var quiet = false

  func validate() throws {
    if resume && force { throw ValidationError("--resume and --force exclude each other") }
  }

  func run() throws {
    try runReportingErrors {
      var overrides = options.overrides
      if let output {
        let absolute = URL(fileURLWithPath: output).standardized.path
        overrides.append("output=\(JSONValue.quoted(absolute))")
      }
      let registry = RegistryHolder.shared.registry
      let manifest = try Manifest.load(path: options.manifest, overrides: overrides, registry: registry)
      let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
      let folder = RunFolder(path: manifest.output)
      let resumeStep = try folder.prepare(for: manifest.resolvedJSON, mode: resume ? .resume : force ? .force : .fresh)
      if resume && resumeStep == nil {
        printError(
          "note: \(folder.checkpoints.folder) holds no complete checkpoint yet; starting the run again from step 0")
      }
      distill_install_interrupt_handlers()
      let trainer = Trainer(pipeline: pipeline, folder: folder, progress: ProgressReporter(style: quiet ? .silent : nil))
      try trainer.run(resumedFrom: resumeStep)
      if !quiet {
        print("run \"\(manifest.name)\" finished at step \(trainer.step): \(folder.path)")
        print("  generator: \(folder.generatorWeightsPath)")
        print("  report:    \(folder.reportPath)")
      }
    }
  }
}

struct ValidateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate",
    abstract: "Check a manifest without training: ids, parameters, references, files and teacher weights.",
    discussion: "Every problem is printed with its JSON path; exit code 2 when there is any.")

  @OptionGroup var options: ManifestOptions

  func run() throws {
    try runReportingErrors {
      let registry = RegistryHolder.shared.registry
      let manifest = try options.load()
      let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
      print("\(options.manifest): valid")
      if let teacher = pipeline.teacher { print("  teacher:   \(teacher.summary)") }
      print("  generator: \(manifest.generator.type), \(pipeline.generator.module.parameterCount) parameters, samples \(pipeline.generator.sampleShape)")
      print("  losses:    \(manifest.losses.map(\.type).joined(separator: ", "))")
      for network in pipeline.networks.dropFirst() {
        print("  trains:    \(network.name), \(network.module.parameterCount) parameters")
      }
      print("  training:  \(manifest.training.steps) steps of \(manifest.training.batchSize)")
      print("  output:    \(manifest.output)")
    }
  }
}
