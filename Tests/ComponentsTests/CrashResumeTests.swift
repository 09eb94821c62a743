import DistillCore
import DistillPipeline
import Foundation
import Testing

/// `pipeline run` killed with SIGKILL at moments picked by genuine timing (after a delay, or
/// as soon as a checkpoint write has begun) and resumed each time: the run ends with the same
/// `generator.safetensors`, byte for byte, as an uninterrupted one, and no checkpoint is ever
/// left half-written or lost. `scripts/crash-test.sh` does the same with many random kills
/// (docs/reliability.md records a long run).
@Suite(.serialized) struct CrashResumeTests {
  /// The toy manifest with a checkpoint every 2 steps, so that writes are frequent.
  func manifest(in folder: String) throws -> String {
    var json = toyManifestJSON(steps: 400, output: folder + "/unused")
    for text in ["training.checkpointEvery=2", "training.keepCheckpoints=2", "evaluation.every=60"] {
      try ManifestOverride(parsing: text).apply(to: &json)
    }
    return writeManifest(json, in: folder)
  }

  enum Kill: CustomStringConvertible {
    /// After a delay from the start.
    case after(milliseconds: Int)
    /// As soon as the n-th checkpoint write after the start has created its partial folder.
    case inWrite(Int)

    var description: String {
      switch self {
      case .after(let ms): return "after \(ms) ms"
      case .inWrite(let n): return "in checkpoint write \(n)"
      }
    }
  }

  /// Starts `pipeline run`, kills it at `moment`, and returns whether it was killed (false:
  /// it finished first, with its exit status checked).
  func runAndKill(_ arguments: [String], checkpoints: String, _ moment: Kill) throws -> Bool {
    let process = Process()
    process.executableURL = pipelineExecutable()
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    switch moment {
    case .after(let ms):
      usleep(UInt32(ms) * 1000)
    case .inWrite(let target):
      var seen = 0
      var last = ""
      let deadline = Date().addingTimeInterval(60)
      while process.isRunning && Date() < deadline {
        let partial = ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? [])
          .first { $0.hasSuffix(".partial") }
        if let partial, partial != last {
          last = partial
          seen += 1
          if seen == target { break }
        }
      }
    }
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    if process.terminationReason == .uncaughtSignal {
      #expect(process.terminationStatus == SIGKILL)
      return true
    }
    #expect(process.terminationStatus == 0, "a run that was not killed must succeed")
    return false
  }

  @Test func killedRunsResumeToTheSameBytesAndNeverLoseACheckpoint() throws {
    let folder = temporaryFolder()
    let path = try manifest(in: folder)
    let reference = folder + "/reference"
    let started = Date()
    let straight = try runPipeline(["run", path, "--output", reference, "--quiet"])
    #expect(straight.status == 0, "\(straight.error)")
    // Delays scale with this machine's speed, so that every kill finds the run still going.
    let runMilliseconds = Int(Date().timeIntervalSince(started) * 1000)
    let run = RunFolder(path: folder + "/killed")
    let store = run.checkpoints
    let keep = 2

    // An early kill (start-up or the first steps), kills inside checkpoint writes and after a
    // longer delay; a kill inside a write is retried until one leaves its partial folder
    // behind (the poll can see the folder just before its rename).
    let plan: [Kill] = [
      .after(milliseconds: min(15, runMilliseconds / 10)), .inWrite(3), .after(milliseconds: runMilliseconds / 4),
      .inWrite(8),
    ]
    var kills = 0
    var killsInsideAWrite = 0
    var previous: [Int] = []
    for kill in plan {
      for attempt in 1...5 {
        let arguments =
          ["run", path, "--output", run.path, "--quiet"]
          + (FileManager.default.fileExists(atPath: run.manifestPath) ? ["--resume"] : [])
        guard try runAndKill(arguments, checkpoints: store.folder, kill) else { break }
        kills += 1
        let partials = store.leftovers().filter { $0.hasSuffix(".partial") }
        if !partials.isEmpty { killsInsideAWrite += 1 }
        // Every complete checkpoint reads back whole...
        let current = store.steps()
        for step in current {
          #expect(throws: Never.self, "step \(step) after the kill \(kill)") { _ = try store.read(step: step) }
        }
        // ...and one complete before the kill is gone only if `keep` newer ones exist.
        for step in previous where !current.contains(step) {
          #expect(current.filter { $0 > step }.count >= keep, "checkpoint \(step) lost by the kill \(kill)")
        }
        #expect((current.last ?? 0) >= (previous.last ?? 0), "the newest checkpoint never goes back")
        previous = current
        if case .inWrite = kill, partials.isEmpty, attempt < 5 { continue }
        break
      }
    }
    #expect(kills >= plan.count, "every planned kill hit a running process")
    #expect(killsInsideAWrite >= 1, "at least one kill landed inside a checkpoint write")

    // A partial write left by the last kill is listed by `pipeline checkpoints`, then removed
    // by the resumed run, which ends with the uninterrupted run's bytes.
    let listing = try runPipeline(["checkpoints", run.path])
    #expect(listing.status == 0, "\(listing.error)")
    #expect(listing.output.split(separator: "\n").filter { $0.hasSuffix(" bytes") }.count == store.steps().count)
    let finish = try runPipeline(["run", path, "--output", run.path, "--quiet", "--resume"])
    #expect(finish.status == 0, "\(finish.error)")
    let expected = FileManager.default.contents(atPath: reference + "/generator.safetensors")
    let got = FileManager.default.contents(atPath: run.generatorWeightsPath)
    #expect(expected != nil && expected == got, "generator.safetensors equals the uninterrupted run's byte for byte")
    #expect(store.leftovers().isEmpty)
    #expect(store.steps() == [398, 400])
    let hidden = try FileManager.default.subpathsOfDirectory(atPath: run.path).filter {
      ($0 as NSString).lastPathComponent.hasPrefix(".")
    }
    #expect(hidden.isEmpty, "no temporary file of a killed write is left: \(hidden)")
  }

  @Test func resumeBeforeTheFirstCheckpointStartsAgainFromStepZero() throws {
    let folder = temporaryFolder()
    let path = try manifest(in: folder)
    let reference = try runPipeline(["run", path, "--output", folder + "/reference", "--quiet"])
    #expect(reference.status == 0, "\(reference.error)")
    // What a run killed before its first checkpoint leaves: its manifest, a metrics line, a
    // partial checkpoint and a temporary file.
    let run = RunFolder(path: folder + "/killed")
    let started = try runPipeline(["run", path, "--output", run.path, "--quiet", "--set", "training.steps=1"])
    #expect(started.status == 0, "\(started.error)")
    for name in ["checkpoints", "generator.safetensors", "generator.json", "report.html"] {
      try FileManager.default.removeItem(atPath: run.file(name))
    }
    try FileManager.default.createDirectory(
      atPath: run.file("checkpoints/.step-00000002.partial"), withIntermediateDirectories: true)
    _ = FileManager.default.createFile(atPath: run.file(".report.html.tmp-1-ab"), contents: Data("<ht".utf8))
    let resumed = try runPipeline(["run", path, "--output", run.path, "--resume"])
    #expect(resumed.status == 0, "\(resumed.error)")
    #expect(resumed.error.contains("holds no complete checkpoint yet; starting the run again from step 0"))
    #expect(
      FileManager.default.contents(atPath: run.generatorWeightsPath)
        == FileManager.default.contents(atPath: folder + "/reference/generator.safetensors"))
    #expect(!FileManager.default.fileExists(atPath: run.file(".report.html.tmp-1-ab")))
    let referenceSteps = try MetricsLog.read(path: folder + "/reference/metrics.jsonl").map(\.step)
    #expect(try MetricsLog.read(path: run.metricsPath).map(\.step) == referenceSteps)
    // A finished run whose checkpoints were removed is not retrained by --resume.
    try FileManager.default.removeItem(atPath: run.file("checkpoints"))
    let finished = try runPipeline(["run", path, "--output", run.path, "--resume", "--quiet"])
    #expect(finished.status == 2 && finished.error.contains("pass --force to train it again"), "\(finished.error)")
    #expect(FileManager.default.fileExists(atPath: run.generatorWeightsPath))
  }
}
