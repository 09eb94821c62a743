import BuiltInComponents
import DistillCore
import DistillPipeline
import Foundation
import MomentMatching
import Testing

@Suite struct MomentMatchingTests {
  /// A Gaussian-mixture dataset (modes at (±2, 1)) and an MLP generator trained with the loss alone.
  func manifest(steps: Int, output: String) throws -> Manifest {
    let text = """
      {"seed": 1, "data": {"type": "gaussian-mixture", "means": [[-2, 1], [2, 1]], "std": 0.3},
       "generator": {"type": "mlp", "width": 32, "depth": 2},
       "losses": [{"type": "moment-matching"}], "optimizer": {"type": "adam", "lr": 0.01},
       "training": {"steps": \(steps), "batchSize": 256, "checkpointEvery": 1000},
       "evaluation": {"every": 1000, "samples": 64}, "output": \(JSONValue.quoted(output))}
      """
    return try Manifest.decode(
      JSONValue.parse(Data(text.utf8), source: "test"), source: "test", baseDirectory: "/", fallbackName: "t",
      registry: .standard(adding: myComponents))
  }

  @Test func registersAndValidates() throws {
    let registry = ComponentRegistry.standard(adding: myComponents)
    #expect(registry.ids(of: .loss).contains(MomentMatching.id))
    #expect(MomentMatching.id == "moment-matching")
  }

  @Test func trainingMatchesTheDataMoments() throws {
    let output = NSTemporaryDirectory() + "moment-matching-\(UUID().uuidString)"
    let manifest = try manifest(steps: 300, output: output)
    let pipeline = try AssembledPipeline.assemble(manifest, registry: .standard(adding: myComponents))
    let folder = RunFolder(path: output)
    _ = try folder.prepare(for: manifest.resolvedJSON, mode: .fresh)
    try Trainer(pipeline: pipeline, folder: folder, progress: ProgressReporter(style: .silent))
      .run(resumedFrom: nil, interruptible: false)

    var rng = RandomGenerator(seed: 9)
    let noise = Tensor.normal([4096, 2], using: &rng)
    let x = withoutGradients { pipeline.generator(noise) }.scalars
    let count = Float(4096)
    let meanX = stride(from: 0, to: x.count, by: 2).map { x[$0] }.reduce(0, +) / count
    let meanY = stride(from: 1, to: x.count, by: 2).map { x[$0] }.reduce(0, +) / count
    let stdX = (stride(from: 0, to: x.count, by: 2).map { (x[$0] - meanX) * (x[$0] - meanX) }.reduce(0, +) / count).squareRoot()
    // The data: mean (0, 1); std √(4 + 0.09) ≈ 2.02 across the modes, 0.3 along y.
    #expect(abs(meanX) < 0.2 && abs(meanY - 1) < 0.2, "mean (\(meanX), \(meanY))")
    #expect(abs(stdX - 2.02) < 0.25, "std along x \(stdX)")
  }
}
