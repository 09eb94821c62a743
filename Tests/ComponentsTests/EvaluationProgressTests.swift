import BuiltInComponents
import DistillCore
import DistillPipeline
import Foundation
import Testing

/// Long phases between training steps show progress: an evaluation's sampling reports each of
/// the generator's network evaluations through the progress reporter.
@Suite struct EvaluationProgressTests {
  final class Lines: @unchecked Sendable {
    var text: [String] = []
  }

  func teacherManifest(_ output: String) throws -> JSONValue {
    let text = """
      {"name": "teacher", "seed": 1,
       "schedule": {"type": "ddpm", "steps": 100},
       "data": {"type": "gaussian-mixture", "means": [[-1, 0], [1, 0]], "std": 0.2},
       "generator": {"type": "denoiser", "init": "new", "steps": 10,
                     "network": {"type": "mlp", "inputSize": 2, "width": 16, "depth": 2, "outputSize": 2}},
       "losses": [{"type": "denoising"}],
       "optimizer": {"type": "adam", "lr": 0.003},
       "training": {"steps": 4, "batchSize": 32, "checkpointEvery": 4},
       "evaluation": {"every": 4, "samples": 128, "metrics": ["energy-distance"]},
       "output": \(JSONValue.quoted(output))}
      """
    return try JSONValue.parse(Data(text.utf8), source: "t")
  }

  func run(_ json: JSONValue, _ reporter: ProgressReporter) throws {
    let registry = ComponentRegistry.standard()
    let manifest = try Manifest.decode(
      json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
    let folder = RunFolder(path: manifest.output)
    let resume = try folder.prepare(for: manifest.resolvedJSON, mode: .fresh)
    let trainer = Trainer(
      pipeline: try AssembledPipeline.assemble(manifest, registry: registry), folder: folder,
      progress: reporter)
    try trainer.run(resumedFrom: resume, interruptible: false)
  }

  @Test func theFinalEvaluationReportsEverySamplerStep() throws {
    let lines = Lines()
    let reporter = ProgressReporter(style: .lines, phaseDelay: 0) { lines.text.append($0) }
    try run(teacherManifest(temporaryFolder() + "/run"), reporter)
    // 128 samples in two batches of 64, ten steps each: 20 network evaluations; the first
    // shown, then a line per tenth.
    let sampling = lines.text.filter { $0.hasPrefix("evaluation at step 4: sampling ") }
    #expect(sampling.count == 11, "\(lines.text)")
    #expect(sampling.first?.hasPrefix("evaluation at step 4: sampling 1/20 |") == true)
    #expect(sampling.last?.hasPrefix("evaluation at step 4: sampling 20/20 |") == true)
  }

  @Test func aShortPhaseStaysQuiet() throws {
    let lines = Lines()
    let reporter = ProgressReporter(style: .lines, phaseDelay: 3600) { lines.text.append($0) }
    try run(teacherManifest(temporaryFolder() + "/run"), reporter)
    #expect(
      !lines.text.isEmpty && lines.text.allSatisfy { !$0.contains("sampling") }, "\(lines.text)")
  }
}
