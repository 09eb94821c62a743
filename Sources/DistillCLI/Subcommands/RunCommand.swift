import ArgumentParser
import CProcess
import DistillCore
import DistillDistributed
import DistillPipeline
import Foundation

/// Options shared by the commands that read a manifest.
struct ManifestOptions: ParsableArguments {
  @Argument(help: "The manifest (JSON); see docs/manifest.md.")
  var manifest: String

  @Option(
    name: .customLong("set"), parsing: .unconditionalSingleValue,
    help: ArgumentHelp(
      "Override a manifest value, e.g. --set training.steps=200 (repeatable).",
      valueName: "PATH=VALUE"))
  var overrides: [String] = []

  func load() throws -> Manifest {
    try Manifest.load(
      path: manifest, overrides: overrides, registry: RegistryHolder.shared.registry)
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

/// How `pipeline run` reports errors on several ranks: each message once, with the exit
/// code it has in one process, and no rank left waiting for another.
struct RankReporting {
  let communicator: any Communicator

  /// Runs `body` on every rank. When it fails on any rank, every rank stops: a failing rank
  /// prints its error (rank 0's alone when rank 0 failed, since the ranks read the same
  /// files), the others exit silently with the same code.
  func together<T>(_ body: () throws -> T) throws -> T {
    var result: Result<T, any Error>
    do { result = .success(try body()) } catch { result = .failure(error) }
    guard communicator.size > 1 else { return try report(result) }
    let failed: Double = if case .failure = result { 1 } else { 0 }
    let verdict = try communicator.allreduceSum([failed, communicator.isMain ? failed : 0])
    if verdict[0] == 0, case .success(let value) = result { return value }
    if case .failure(let error) = result {
      try exit(reporting: error, printed: communicator.isMain || verdict[1] == 0)
    }
    // Another rank failed; its message says why. Bad input is the likely cause (exit 2).
    throw ExitCode(2)
  }

  /// Runs `body` on rank 0 alone and gives its result (an `Int?`) to every rank; when it
  /// fails, rank 0 prints the error and every rank exits with its code.
  func mainDecides(_ body: () throws -> Int?) throws -> Int? {
    var result: Result<Int?, any Error> = .success(nil)
    if communicator.isMain {
      do { result = .success(try body()) } catch { result = .failure(error) }
    }
    guard communicator.size > 1 else { return try report(result) }
    // [failed, exit code, has value, value]
    var message: [Double] = [0, 0, 0, 0]
    switch result {
    case .success(let value): message = [0, 0, value == nil ? 0 : 1, Double(value ?? 0)]
    case .failure(let error): message = [1, Double(exitCode(for: error).rawValue), 0, 0]
    }
    message = try communicator.allreduceSum(communicator.isMain ? message : [0, 0, 0, 0])
    if message[0] > 0 {
      if case .failure(let error) = result {
        _ = try report(Result<Int?, any Error>.failure(error))
      }
      throw ExitCode(Int32(message[1]))
    }
    return message[2] > 0 ? Int(message[3]) : nil
  }

  /// Exits with `error`'s code, printing it when `printed`.
  func exit(reporting error: any Error, printed: Bool) throws -> Never {
    if printed { try runReportingErrors { throw error } }
    throw exitCode(for: error)
  }

  /// Prints this rank's own failure and ends every rank of the job with its exit code.
  func abort(reporting error: any Error) -> Never {
    printError("error: rank \(communicator.rank) of \(communicator.size): \(error)")
    communicator.abort(exitCode: exitCode(for: error).rawValue)
  }

  private func report<T>(_ result: Result<T, any Error>) throws -> T {
    switch result {
    case .success(let value): return value
    case .failure(let error):
      try runReportingErrors { throw error }
      fatalError("runReportingErrors rethrows")
    }
  }
}

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
        "  generator: \(manifest.generator.type), \(pipeline.generator.module.parameterCount) parameters, samples \(pipeline.generator.sampleShape)"
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
