import ArgumentParser
import CProcess
import DistillCore
import DistillDistributed
import DistillPipeline
import Foundation

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Validate a manifest, then train it in its run folder.",
    discussion: """
      The run folder (the manifest's "output", or --output) receives the resolved manifest, checkpoints, \
      metrics.jsonl, TensorBoard events, sample grids, report.html and the final generator. A folder holding a \
      run is refused unless --resume (continue from its latest checkpoint) or --force (replace it). \
      --resume on a run that stopped before its first checkpoint starts it again from step 0. \
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
    // Under mpirun every rank runs this; see docs/distributed.md. Outside a launcher this is
    // one process and MPI is never loaded.
    let communicator: any Communicator
    do { communicator = try communicatorFromEnvironment() } catch {
      try runReportingErrors { throw error }
      return
    }
    let ranks = RankReporting(communicator: communicator)
    // 1. Every rank reads the manifest and builds the pipeline; all stop if any rank fails.
    let built = try ranks.together { () throws -> (Manifest, AssembledPipeline) in
      var overrides = options.overrides
      if let output {
        let absolute = URL(fileURLWithPath: output).standardized.path
        overrides.append("output=\(JSONValue.quoted(absolute))")
      }
      let registry = RegistryHolder.shared.registry
      let manifest = try Manifest.load(
        path: options.manifest, overrides: overrides, registry: registry)
      return (manifest, try AssembledPipeline.assemble(manifest, registry: registry))
    }
    let (manifest, pipeline) = built
    let folder = RunFolder(path: manifest.output)
    // 2. Rank 0 prepares the run folder; every rank resumes from the step it found.
    let resumeStep = try ranks.mainDecides {
      let step = try folder.prepare(
        for: manifest.resolvedJSON, mode: resume ? .resume : force ? .force : .fresh)
      if resume && step == nil {
        printError(
          "note: \(folder.checkpoints.folder) holds no complete checkpoint yet; starting the run again from step 0")
      }
      return step
    }
    distill_install_interrupt_handlers()
    if communicator.size > 1 && communicator.isMain && !quiet {
      printError(
        "data-parallel on \(communicator.size) ranks (\(communicator.backend)): global batch "
          + "\(communicator.size) x \(manifest.training.batchSize)")
    }
    // 3. Training: failures that stop every rank alike exit normally; one rank's own failure
    //    ends the job.
    let trainer = Trainer(
      pipeline: pipeline, folder: folder, progress: ProgressReporter(style: quiet ? .silent : nil),
      communicator: communicator)
    do {
      try trainer.run(resumedFrom: resumeStep)
    } catch {
      if trainer.stoppedTogether || communicator.size == 1 {
        try ranks.exit(reporting: error, printed: communicator.isMain)
      }
      ranks.abort(reporting: error)
    }
    try communicator.finalize()
    if !quiet && communicator.isMain {
      print("run \"\(manifest.name)\" finished at step \(trainer.step): \(folder.path)")
      print("  generator: \(folder.generatorWeightsPath)")
      print("  report:    \(folder.reportPath)")
    }
  }
}
