import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillPipeline
import Foundation
import PairsData
import Testing

private func scratchFolder(_ name: String = #function) -> String {
  let path = NSTemporaryDirectory() + "distillery-regression-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
  try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

private let teacherJSON = #"{"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.3}"#

/// Writes `count` DDIM pairs of the two-mode teacher into `folder`.
private func writeMixturePairs(_ folder: String, count: Int) throws {
  let text = #"{"teacher": \#(teacherJSON), "generator": {"type": "mlp"}, "losses": [{"type": "denoising"}]}"#
  let manifest = try Manifest.decode(
    JSONValue.parse(Data(text.utf8), source: "t"), source: "t", baseDirectory: "/", fallbackName: "t",
    registry: .standard())
  let teacher = try AssembledPipeline.buildTeacher(manifest, registry: .standard(), for: "precomputing pairs")
  try writePairs(
    teacher: teacher, options: PairsOptions(count: count, sampler: .ddim, steps: 25, seed: 11, shardSize: 100),
    folder: folder)
}

/// A manifest training an MLP generator with the regression loss on `pairs`, the pairs also as data.
private func regressionManifest(
  pairs: String, output: String, steps: Int, distance: String = "l2", lr: Double = 0.003
) throws -> Manifest {
  let text = """
    {"name": "regression-test", "seed": 4, "teacher": \(teacherJSON),
     "generator": {"type": "mlp", "width": 64, "depth": 2},
     "data": {"type": "pairs", "path": \(JSONValue.quoted(pairs))},
     "losses": [{"type": "regression", "pairs": \(JSONValue.quoted(pairs)), "distance": "\(distance)"}],
     "optimizer": {"type": "adam", "lr": \(lr)},
     "training": {"steps": \(steps), "batchSize": 48, "checkpointEvery": 15, "keepCheckpoints": 5, "logEvery": 5},
     "evaluation": {"every": 1000, "samples": 64, "gridSize": 16},
     "output": \(JSONValue.quoted(output))}
    """
  return try Manifest.decode(
    JSONValue.parse(Data(text.utf8), source: "manifest.json"), source: "manifest.json", baseDirectory: "/",
    fallbackName: "m", registry: .standard())
}

/// Mean over pairs of |generator(noise) − teacher sample|².
private func pairDistance(_ generator: any Generator, _ store: PairsStore) -> Double {
  let pairs = store.pairs(Array(0..<store.count))
  let (noise, samples) = (pairs.inputs!, pairs.samples!)
  let output = withoutGradients { generator(noise) }
  return Double((output - samples).square().sum().item) / Double(store.count)
}

@Suite struct RegressionLossTests {
  @Test func regressionDrivesTheGeneratorOntoThePairs() throws {
    let pairs = scratchFolder() + "/pairs"
    try writeMixturePairs(pairs, count: 200)
    let store = try PairsStore(folder: pairs)
    let manifest = try regressionManifest(pairs: pairs, output: scratchFolder() + "/run", steps: 400)
    let pipeline = try AssembledPipeline.assemble(manifest, registry: .standard())
    let before = pairDistance(pipeline.generator, store)
    let folder = RunFolder(path: manifest.output)
    _ = try folder.prepare(for: manifest.resolvedJSON, mode: .fresh)
    try Trainer(pipeline: pipeline, folder: folder, progress: ProgressReporter(style: .silent))
      .run(resumedFrom: nil, interruptible: false)
    let after = pairDistance(pipeline.generator, store)
    // The modes are 4 apart; the teacher's map from noise to a mode is learnt, not just the mean.
    #expect(before > 1)
    #expect(after < 0.05 * before, "mean squared distance \(before) -> \(after)")
    #expect(after < 0.15)
    // The diagnostics: the per-sample distance falls with the loss; the gradient is logged.
    let logged = try MetricsLog.read(path: manifest.output + "/metrics.jsonl").compactMap { record in
      record.values["reg/distance"].map { ($0, record.values["reg/sample-gradient-norm"] ?? .nan) }
    }
    let (first, last) = (try #require(logged.first), try #require(logged.last))
    #expect(logged.count > 2 && last.0 < 0.3 * first.0, "reg/distance \(first.0) -> \(last.0)")
    #expect(logged.allSatisfy { $0.1.isFinite && $0.1 > 0 })
    // The data source hands out the same pairs: samples with their noise.
    var rng = RandomGenerator(seed: 0)
    let batch = try #require(pipeline.data).next(3, using: &rng)
    #expect(batch.samples?.shape == [3, 2] && batch.inputs?.shape == [3, 2])
  }

  @Test func resumedRunEndsWithTheSameWeights() throws {
    let pairs = scratchFolder() + "/pairs"
    try writeMixturePairs(pairs, count: 70)  // batches of 48 cross epochs
    let output = scratchFolder() + "/run"
    let manifest = try regressionManifest(pairs: pairs, output: output, steps: 30, distance: "l1")
    let whole = try AssembledPipeline.assemble(manifest, registry: .standard())
    let folder = RunFolder(path: output)
    _ = try folder.prepare(for: manifest.resolvedJSON, mode: .fresh)
    try Trainer(pipeline: whole, folder: folder, progress: ProgressReporter(style: .silent))
      .run(resumedFrom: nil, interruptible: false)
    let expected = whole.generator.module.stateDict()
    #expect(folder.checkpoints.steps().contains(15))

    let resumed = try AssembledPipeline.assemble(manifest, registry: .standard())
    try Trainer(pipeline: resumed, folder: folder, progress: ProgressReporter(style: .silent))
      .run(resumedFrom: 15, interruptible: false)
    let got = resumed.generator.module.stateDict()
    #expect(got.keys.sorted() == expected.keys.sorted())
    for (key, value) in expected {
      #expect(got[key]!.scalars.map(\.bitPattern) == value.scalars.map(\.bitPattern), "\(key)")
    }
    let source = try #require(resumed.data as? PairsSource)
    #expect(source.cursor.checkpointState()["count"]?.scalars == [70])
  }

  @Test func lpipsAndMismatchedShapesAreRefusedAtBuildTime() throws {
    let pairs = scratchFolder() + "/pairs"
    try writeMixturePairs(pairs, count: 4)
    let lpips = try regressionManifest(pairs: pairs, output: scratchFolder(), steps: 1, distance: "lpips")
    do {
      _ = try AssembledPipeline.assemble(lpips, registry: .standard())
      Issue.record("lpips was accepted")
    } catch let error as ManifestError {
      // Without an lpips object naming the weights, never with a random trunk.
      #expect(error.description.contains("losses[0].lpips"))
      #expect(error.description.contains("LPIPS never runs with a random trunk"))
    }
    // Pairs of 2-D samples against a 3-D teacher: the error names the index file.
    let text = """
      {"teacher": {"type": "gaussian-mixture", "means": [[-2, 0, 1], [2, 0, 1]]}, "generator": {"type": "mlp"},
       "data": {"type": "pairs", "path": \(JSONValue.quoted(pairs))}, "losses": [{"type": "regression", "pairs": \(JSONValue.quoted(pairs))}]}
      """
    let mismatched = try Manifest.decode(
      JSONValue.parse(Data(text.utf8), source: "m"), source: "m", baseDirectory: "/", fallbackName: "m",
      registry: .standard())
    do {
      _ = try AssembledPipeline.assemble(mismatched, registry: .standard())
      Issue.record("pairs of another shape were accepted")
    } catch let error as ManifestError {
      #expect(error.description.contains("data:"))
      #expect(error.description.contains("pairs.json: sampleShape"))
      #expect(error.description.contains("[3]") && error.description.contains("[2]"))
    }
  }
}
