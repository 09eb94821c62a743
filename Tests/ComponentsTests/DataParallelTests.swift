import DistillCore
import Foundation
import Testing

@testable import DistillPipeline

/// `mpirun` on PATH, or nil: the multi-rank tests are skipped (with this reason) on machines
/// without Open MPI; `scripts/setup.sh` installs it, so CI runs them.
private let mpirun: String? = {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
  return path.split(separator: ":").map { "\($0)/mpirun" }.first {
    FileManager.default.isExecutableFile(atPath: $0)
  }
}()

/// The tests' environment without the variables of a launcher that may have started them, so
/// that a child does not take itself for a rank of that job.
private func environmentOutsideAnyJob() -> [String: String] {
  ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OMPI_") && !$0.key.hasPrefix("PMI") }
}

/// Runs `pipeline ARGUMENTS` as `ranks` processes under mpirun (1: plainly), on loopback only.
private func launch(ranks: Int, _ arguments: [String]) throws -> ProcessResult {
  var environment = environmentOutsideAnyJob()
  guard ranks > 1 else { return try runPipeline(arguments, environment: environment) }
  // No network and no ptrace: what works in a container.
  environment["OMPI_MCA_btl"] = "self,vader"
  environment["OMPI_MCA_oob_tcp_if_include"] = "lo"
  environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
  return try runPipeline(
    ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", pipelineExecutable().path] + arguments,
    executable: URL(fileURLWithPath: mpirun!), environment: environment)
}

/// The largest absolute difference between two weight files with the same tensors.
private func largestDifference(_ a: String, _ b: String) throws -> Float {
  let left = try SafetensorsFile.read(contentsOf: a).tensors()
  let right = try SafetensorsFile.read(contentsOf: b).tensors()
  #expect(left.keys.sorted() == right.keys.sorted())
  var largest: Float = 0
  for (name, x) in left {
    for (u, v) in zip(x.scalars, right[name]?.scalars ?? []) {
      largest = max(largest, Swift.abs(u - v))
    }
  }
  return largest
}

/// A teacher-training manifest: the `denoising` loss on `gaussian-mixture` data, so a data
/// source's rows are split too.
private func denoisingManifestJSON(steps: Int, batchSize: Int, output: String) -> JSONValue {
  let text = """
    {
      "name": "toy-teacher-test", "seed": 11,
      "generator": {"type": "denoiser", "init": "new", "prediction": "epsilon", "steps": 4,
                    "network": {"type": "mlp", "inputSize": 2, "width": 16, "depth": 2, "outputSize": 2}},
      "data": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0], [0, 2]], "std": 0.3},
      "losses": [{"type": "denoising"}],
      "optimizer": {"type": "adam", "lr": 0.002},
      "training": {"steps": \(steps), "batchSize": \(batchSize), "ema": 0.9, "checkpointEvery": 20},
      "evaluation": {"every": 1000, "samples": 64, "gridSize": 16, "metrics": ["energy-distance"]},
      "output": \(JSONValue.quoted(output))
    }
    """
  return try! JSONValue.parse(Data(text.utf8), source: "toy-teacher")
}

/// The documented tolerance (docs/distributed.md) between N ranks of B rows and one process
/// of N * B rows after these short runs: float rounding of two half-batch means against one
/// whole-batch mean, carried through Adam.
private let equivalenceTolerance: Float = 1e-4

/// A data source without a cursor: each row drawn from the stream it is given.
private final class NormalRows: DataSource {
  var sampleShape: [Int] { [3] }
  func next(_ size: Int, using rng: inout RandomGenerator) throws -> Batch {
    Batch(
      samples: Tensor.normal([size, 3], using: &rng), labels: rng.integers(count: size, in: 0..<10))
  }
}

/// Data-parallel training: the per-row random streams that make a split batch draw what the
/// whole batch draws (in-process), and `pipeline run` under `mpirun -np 2`.
@Suite(.serialized) struct DataParallelTests {
  // MARK: In one process: the rows of a split batch

  @Test func splitRowsDrawWhatTheWholeBatchDraws() throws {
    let json = toyManifestJSON(output: temporaryFolder() + "/run")
    let manifest = try Manifest.decode(
      json, source: "t", baseDirectory: NSTemporaryDirectory(), fallbackName: "t",
      registry: .standard())
    let pipeline = try AssembledPipeline.assemble(manifest, registry: .standard())
    let stream = RandomGenerator(seed: 99).fork(12)
    func context(_ rows: Range<Int>, rank: Int) -> StepContext {
      StepContext(
        step: 3, phase: .generator, rows: rows, globalBatchSize: 8, rank: rank,
        generator: pipeline.generator,
        teacher: pipeline.teacher, schedule: pipeline.context.schedule, scores: [:],
        data: NormalRows(),
        stream: stream)
    }
    // Draw in the same order in the whole batch and in each half.
    func draws(_ c: StepContext) throws -> [[Float]] {
      let batch = try c.batch()
      return [
        c.noise().scalars, c.normal([c.batchSize, 2, 3]).scalars,
        c.timesteps(c.batchSize, in: 0..<1000).map(Float.init),
        c.integers(in: 0..<7).map(Float.init), try #require(batch.samples).scalars,
        try #require(batch.labels).map(Float.init),
      ]
    }
    let whole = try draws(context(0..<8, rank: 0))
    let halves = try [draws(context(0..<4, rank: 0)), draws(context(4..<8, rank: 1))]
    for (index, expected) in whole.enumerated() {
      #expect(halves[0][index] + halves[1][index] == expected, "draw \(index)")
    }
    // The rows are not all alike: each has its own stream.
    #expect(Set(whole[2]).count > 1 && whole[0][0..<2] != whole[0][2..<4])
    // `rng` is the rank's own stream: rank 1 draws differently from rank 0.
    var r0 = context(0..<4, rank: 0).rng
    var r1 = context(4..<8, rank: 1).rng
    #expect(r0.normal(count: 4) != r1.normal(count: 4))
  }

  @Test func aLaunchWithoutLoadableMPIIsRefusedNotRunAlone() throws {
    // What `pipeline run` sees when mpirun starts it where libmpi cannot be loaded: it must
    // not train alone, believing it is the whole job.
    let folder = temporaryFolder()
    let path = writeManifest(toyManifestJSON(steps: 5, output: folder + "/run"), in: folder)
    var environment = environmentOutsideAnyJob()
    environment["OMPI_COMM_WORLD_SIZE"] = "2"
    environment["OMPI_COMM_WORLD_RANK"] = "0"
    environment["DISTILL_LIBMPI"] = "/nonexistent/libmpi.so.40"
    let result = try runPipeline(["run", path, "--quiet"], environment: environment)
    let message = result.error
    #expect(result.status == 2, "\(message)")
    #expect(message.contains("launched as one of 2 ranks (OMPI_COMM_WORLD_SIZE=2) but Open MPI could not be loaded"))
    #expect(message.contains("/nonexistent/libmpi.so.40"))
    #expect(!FileManager.default.fileExists(atPath: folder + "/run"), "nothing may be written")
  }

  // MARK: Under mpirun

  @Test(
    .enabled(
      if: mpirun != nil,
      "mpirun not found on PATH: install openmpi-bin (bash scripts/setup.sh) to run 2 ranks"),
    .timeLimit(.minutes(3)))
  func twoRanksOfBRowsTrainLikeOneProcessOf2BRows() throws {
    let folder = temporaryFolder()
    // Toy DMD (generator and a trained fake score, EMA) and teacher training (data rows).
    let manifests: [(String, (Int, String) -> JSONValue)] = [
      (
        "dmd",
        { batch, output in
          var json = toyManifestJSON(steps: 60, output: output)
          try! ManifestOverride(parsing: "training.batchSize=\(batch)").apply(to: &json)
          return json
        }
      ),
      (
        "denoising",
        { batch, output in denoisingManifestJSON(steps: 60, batchSize: batch, output: output) }
      ),
    ]
    for (name, make) in manifests {
      let runs = [(1, 32, "one-32"), (2, 16, "two-16"), (1, 16, "one-16")]
      for (ranks, batch, label) in runs {
        let path = writeManifest(
          make(batch, "\(folder)/\(name)-\(label)"), in: folder, name: "\(name)-\(label).json")
        let result = try launch(ranks: ranks, ["run", path, "--quiet"])
        #expect(result.status == 0, "\(name) \(label): \(result.output)\n\(result.error)")
      }
      let weights = { (label: String) in "\(folder)/\(name)-\(label)/generator.safetensors" }
      let split = try largestDifference(weights("one-32"), weights("two-16"))
      let smaller = try largestDifference(weights("one-32"), weights("one-16"))
      #expect(split <= equivalenceTolerance, "\(name): 2 ranks x 16 vs 1 x 32 differ by \(split)")
      // What the comparison can tell apart: the same run on half the batch is far off.
      #expect(
        smaller > 100 * equivalenceTolerance, "\(name): 1 x 16 vs 1 x 32 differ by only \(smaller)")
      // Rank 0 alone wrote: one metrics line per logged step, as in one process.
      let lines = { (label: String) in
        (try? String(contentsOfFile: "\(folder)/\(name)-\(label)/metrics.jsonl", encoding: .utf8))?
          .split(separator: "\n").count ?? -1
      }
      #expect(lines("two-16") == lines("one-32") && lines("one-32") > 0)
    }
  }

  @Test(
    .enabled(
      if: mpirun != nil,
      "mpirun not found on PATH: install openmpi-bin (bash scripts/setup.sh) to run 2 ranks"),
    .timeLimit(.minutes(3)))
  func twoRanksResumeFromRank0sCheckpointBitForBit() throws {
    let folder = temporaryFolder()
    let straight = writeManifest(
      toyManifestJSON(steps: 40, output: folder + "/straight"), in: folder, name: "a.json")
    let stopped = writeManifest(
      toyManifestJSON(steps: 20, output: folder + "/resumed"), in: folder, name: "b.json")
    #expect(try launch(ranks: 2, ["run", straight, "--quiet"]).status == 0)
    #expect(try launch(ranks: 2, ["run", stopped, "--quiet"]).status == 0)
    let resumed = try launch(
      ranks: 2, ["run", stopped, "--quiet", "--resume", "--set", "training.steps=40"])
    #expect(resumed.status == 0, "\(resumed.error)")
    let a = FileManager.default.contents(atPath: folder + "/straight/generator.safetensors")
    let b = FileManager.default.contents(atPath: folder + "/resumed/generator.safetensors")
    #expect(a != nil && a == b)
  }

  @Test(
    .enabled(
      if: mpirun != nil,
      "mpirun not found on PATH: install openmpi-bin (bash scripts/setup.sh) to run 2 ranks"),
    .timeLimit(.minutes(3)))
  func badInputUnderTwoRanksIsReportedOnceWithExitCode2() throws {
    let folder = temporaryFolder()
    var json = toyManifestJSON(steps: 10, output: folder + "/run")
    try ManifestOverride(parsing: "training.stepz=3").apply(to: &json)
    let bad = try launch(
      ranks: 2, ["run", writeManifest(json, in: folder, name: "bad.json"), "--quiet"])
    #expect(bad.status == 2, "\(bad.error)")
    #expect(
      bad.error.components(separatedBy: "training.stepz: unknown parameter").count == 2,
      "\(bad.error)")
    // A run folder that holds a run: rank 0 alone looks, every rank stops.
    let good = writeManifest(toyManifestJSON(steps: 10, output: folder + "/run"), in: folder)
    #expect(try launch(ranks: 2, ["run", good, "--quiet"]).status == 0)
    let again = try launch(ranks: 2, ["run", good, "--quiet"])
    #expect(again.status == 2)
    #expect(again.error.components(separatedBy: "pass --resume").count == 2, "\(again.error)")
  }
}
