import BuiltInComponents
import DistillCore
import DistillDiffusion
import EnergyDistance
import Foundation
import Testing

@testable import DistillPipeline

/// Runs a pipeline in-process, silently, into a temporary folder.
enum PipelineRun {
  static var registry: ComponentRegistry { ComponentRegistry.standard() }

  /// The repository's `Templates/manifests/<name>`.
  static func templatePath(_ name: String) -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    return root.appendingPathComponent("Templates/manifests/\(name)").path
  }

  /// The energy distance of `name`'s generator before any training: the evaluation's sample
  /// count from its fixed noise against as many reference samples, as the metric measures it.
  static func untrainedEnergyDistance(_ name: String, overrides: [String] = []) throws -> Double {
    let manifest = try Manifest.load(path: templatePath(name), overrides: overrides, registry: registry)
    let untrained = try AssembledPipeline.assemble(manifest, registry: registry)
    let trainer = Trainer(pipeline: untrained, folder: RunFolder(path: "/nonexistent"), progress: ProgressReporter(style: .silent))
    let evaluation = manifest.evaluation
    let reference = try #require(try trainer.recorder.evaluationContext.referenceSamples(evaluation.samples))
    return EnergyDistanceMetric.energyDistance(
      RunRecorder.generate(untrained.generator, count: evaluation.samples, seed: evaluation.seed, batchSize: 1024), reference)
  }

  /// Loads `name` with `overrides`, trains it to the end in a fresh temporary folder, and
  /// returns the pipeline, the last evaluation line of metrics.jsonl and the evaluated samples.
  static func train(_ name: String, overrides: [String] = []) throws -> (
    pipeline: AssembledPipeline, final: [String: Double], samples: Tensor
  ) {
    let folder = NSTemporaryDirectory() + "distillery-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let manifest = try Manifest.load(
      path: templatePath(name), overrides: overrides + ["output=\(folder)"], registry: registry)
    let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
    let run = RunFolder(path: folder)
    _ = try run.prepare(for: manifest.resolvedJSON, mode: .fresh)
    let trainer = Trainer(pipeline: pipeline, folder: run, progress: ProgressReporter(style: .silent))
    try trainer.run(resumedFrom: nil, interruptible: false)
    let records = try MetricsLog.read(path: run.metricsPath)
    let final = records.last { $0.values["eval/energy-distance"] != nil }?.values ?? [:]
    // The samples the final evaluation saw (EMA weights when the manifest keeps them).
    let evaluation = manifest.evaluation
    let samples = try trainer.recorder.withEvaluationWeights {
      RunRecorder.generate(pipeline.generator, count: evaluation.samples, seed: evaluation.seed, batchSize: 1024)
    }
    return (pipeline, final, samples)
  }
}

/// Modes of a mixture that hold at least `threshold` of their true mass counting only samples
/// within `radius` component standard deviations of the mean: a point collapsed halfway
/// between two modes covers neither.
func coveredModes(_ samples: Tensor, _ mixture: GaussianMixtureDenoiser, threshold: Double = 0.5, radius: Double = 3)
  -> Int
{
  let d = mixture.dimension
  let n = samples.shape[0]
  let values = samples.scalars
  var counts = [Int](repeating: 0, count: mixture.means.count)
  for i in 0..<n {
    var best = (k: -1, distance: Double.infinity)
    for (k, mean) in mixture.means.enumerated() {
      var s = 0.0
      for j in 0..<d { s += pow(Double(values[i * d + j]) - mean[j], 2) }
      if s < best.distance { best = (k, s) }
    }
    if best.distance.squareRoot() <= radius * mixture.std { counts[best.k] += 1 }
  }
  return counts.indices.filter { Double(counts[$0]) / Double(n) >= threshold * mixture.weights[$0] }.count
}
