import BuiltInComponents
import ConsistencyDistillation
import DistillCore
import DistillNN
import Foundation
import PairsData
import Testing

@testable import DistillPipeline

/// LPIPS as the distance of the regression, knowledge-distillation and consistency losses:
/// gradients reach the generator, and a manifest without weights or with images too small
/// for the trunk is refused naming the JSON path.
@Suite struct LPIPSLossTests {
  @Test func gradientReachesTheGeneratorAsFiniteDifferencesSay() throws {
    // A tiny generator: a 1x1 convolution (3 -> 3 channels) of a fixed input, against fixed
    // targets, with the consistency loss's per-sample weights.
    var rng = RandomGenerator(seed: 4)
    let lpips = LPIPS(network: .squeeze, seed: 2)
    let generator = Conv2d(inputChannels: 3, outputChannels: 3, kernel: 1, using: &rng)
    let input = Tensor.uniform([2, 3, 17, 17], low: -1, high: 1, using: &rng)
    let target = Tensor.uniform([2, 3, 17, 17], low: -1, high: 1, using: &rng)
    let weights = [0.5, 2.0]
    func loss() -> Tensor {
      ConsistencyDistillationTerm.distanceLoss(
        generator(input), target, weights: weights, distance: .lpips, huberC: 0, lpips: lpips)
    }
    // The value is the weighted mean of the per-sample distances.
    let perSample = withoutGradients { lpips(generator(input), target) }.scalars
    let value = withoutGradients { loss() }.item
    #expect(abs(Double(value) - (0.5 * Double(perSample[0]) + 2 * Double(perSample[1])) / 2) < 1e-6)

    generator.zeroGrad()
    loss().backward()
    let analytic = try #require(generator.weight.grad).scalars
    #expect(analytic.contains { $0 != 0 })
    let step: Float = 1e-3
    for index in [0, 4, 8] {
      let original = generator.weight.value.scalars
      func evaluated(_ delta: Float) -> Double {
        var shifted = original
        shifted[index] += delta
        generator.weight.assign(Tensor(shape: generator.weight.shape, scalars: shifted))
        return Double(withoutGradients { loss() }.item)
      }
      let numeric = (evaluated(step) - evaluated(-step)) / Double(2 * step)
      generator.weight.assign(Tensor(shape: generator.weight.shape, scalars: original))
      #expect(
        abs(numeric - Double(analytic[index])) <= 2e-2 * abs(numeric) + 1e-4,
        "weight \(index): finite differences \(numeric), gradient \(analytic[index])")
    }
  }

  /// The error the manifest with loss `loss` (and the 32x32 image teacher) is refused with at
  /// assembly, or "assembled".
  func assembly(loss: String, generator: String = #"{"type": "denoiser", "steps": 1}"#, in folder: String) throws
    -> String
  {
    _ = try imageTeacherFolder(in: folder)
    let text = """
      {"teacher": {"type": "folder", "path": "teacher"}, "generator": \(generator),
       "data": {"type": "shapes", "size": 32}, "losses": [\(loss)], "training": {"steps": 2, "batchSize": 2},
       "evaluation": {"samples": 4, "gridSize": 4}, "output": "run"}
      """
    let manifest = try Manifest.decode(
      JSONValue.parse(Data(text.utf8), source: "m"), source: folder + "/m.json", baseDirectory: folder,
      fallbackName: "m", registry: .standard())
    do {
      _ = try AssembledPipeline.assemble(manifest, registry: .standard())
      return "assembled"
    } catch {
      return "\(error)"
    }
  }

  @Test func refusedWithoutWeightsOrWithImagesTooSmall() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    _ = try randomLPIPSWeights(.squeeze, in: folder)
    let consistency = #"{"type": "consistency", "steps": 1}"#
    for (loss, generator) in [
      (#"{"type": "knowledge-distillation", "steps": 2, "distance": "lpips"}"#, nil),
      (#"{"type": "consistency-distillation", "distance": "lpips"}"#, consistency),
    ] {
      let missing = try assembly(loss: loss, generator: generator ?? #"{"type": "denoiser", "steps": 1}"#, in: folder)
      #expect(missing.contains("losses[0].lpips") && missing.contains("random trunk"), "\(missing)")
    }
    let noFile = try assembly(
      loss: #"{"type": "knowledge-distillation", "distance": "lpips", "lpips": {"net": "squeeze", "weights": "nothing.safetensors"}}"#,
      in: folder)
    #expect(noFile.contains("losses[0].lpips.weights") && noFile.contains("no such file"), "\(noFile)")
    let misspelt = try assembly(
      loss: #"{"type": "knowledge-distillation", "distance": "lpips", "lpips": {"net": "squeeze", "weight": "lpips-squeeze.safetensors"}}"#,
      in: folder)
    #expect(misspelt.contains("losses[0].lpips.weight") && misspelt.contains("did you mean \"weights\""), "\(misspelt)")
    // Alex needs sides of 31: a 16x16 teacher is refused, naming the net and the size.
    let small = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: small) }
    _ = try imageTeacherFolder(in: small, size: 16)
    let manifestText = """
      {"teacher": {"type": "folder", "path": "teacher"}, "generator": {"type": "denoiser", "steps": 1},
       "losses": [{"type": "knowledge-distillation", "distance": "lpips", "lpips": {"net": "alex", "weights": "w.safetensors"}}]}
      """
    try SafetensorsFile.write(["x": Tensor([0])], to: small + "/w.safetensors")
    let manifest = try Manifest.decode(
      JSONValue.parse(Data(manifestText.utf8), source: "m"), source: small + "/m.json", baseDirectory: small,
      fallbackName: "m", registry: .standard())
    #expect {
      _ = try AssembledPipeline.assemble(manifest, registry: .standard())
    } throws: { "\($0)".contains("losses[0].lpips.net") && "\($0)".contains("at least 31") }
    // An lpips object with another distance is a mistake, not ignored.
    let unused = try assembly(
      loss: #"{"type": "knowledge-distillation", "lpips": {"net": "squeeze", "weights": "lpips-squeeze.safetensors"}}"#,
      in: folder)
    #expect(unused.contains("losses[0].lpips") && unused.contains("distance"), "\(unused)")
  }

  /// Knowledge distillation, regression on teacher pairs and consistency distillation on
  /// shapes, each trained through LPIPS by `Trainer` as `pipeline run` trains: the distance
  /// the term logs falls, and every logged loss is finite. (Random-trunk weights: this tests
  /// the plumbing, not LPIPS.)
  @Test(arguments: ["knowledge-distillation", "regression", "consistency-distillation"])
  func trainsThroughLPIPS(loss: String) throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    _ = try imageTeacherFolder(in: folder)
    _ = try randomLPIPSWeights(.squeeze, in: folder)
    let lpips = #""distance": "lpips", "lpips": {"net": "squeeze", "weights": "lpips-squeeze.safetensors"}"#
    let (generator, data, term, logged): (String, String, String, String)
    if loss == "knowledge-distillation" {
      // Unclamped: the random ε teacher's one-step x̂₀ lies far outside [−1, 1], where a
      // clamped x̂₀ (the default for ε images) passes no gradient.
      generator = #"{"type": "denoiser", "steps": 1, "clipSample": false}"#
      data = #"{"type": "shapes", "size": 32}"#
      term = #"{"type": "knowledge-distillation", "steps": 2, \#(lpips)}"#
      logged = "kd/distance"
    } else if loss == "regression" {
      // Eight pairs from the teacher's 10-step DDIM, visited as one fixed batch.
      let text = #"{"teacher": {"type": "folder", "path": "teacher"}, "generator": {"type": "denoiser"}, "losses": [{"type": "denoising"}]}"#
      let teacherManifest = try Manifest.decode(
        JSONValue.parse(Data(text.utf8), source: "t"), source: folder + "/t.json", baseDirectory: folder,
        fallbackName: "t", registry: .standard())
      let teacher = try AssembledPipeline.buildTeacher(teacherManifest, registry: .standard(), for: "precomputing pairs")
      try writePairs(
        teacher: teacher, options: PairsOptions(count: 8, sampler: .ddim, steps: 10, seed: 3, shardSize: 8, clipSample: true),
        folder: folder + "/pairs")
      generator = #"{"type": "denoiser", "steps": 1}"#
      data = #"{"type": "pairs", "path": "pairs", "shuffle": false}"#
      term = #"{"type": "regression", "pairs": "pairs", \#(lpips)}"#
      logged = "reg/distance"
    } else {
      generator = #"{"type": "consistency", "steps": 1}"#
      data = #"{"type": "shapes", "size": 32}"#
      term = #"{"type": "consistency-distillation", "gridPoints": 8, \#(lpips)}"#
      logged = "cd/distance"
    }
    let text = """
      {"seed": 5, "teacher": {"type": "folder", "path": "teacher"}, "generator": \(generator), "data": \(data),
       "losses": [\(term)], "optimizer": {"type": "adam", "lr": 0.0003},
       "training": {"steps": 12, "batchSize": 8, "logEvery": 1},
       "evaluation": {"every": 100, "samples": 4, "gridSize": 4}, "output": "run"}
      """
    let trainer = try train(JSONValue.parse(Data(text.utf8), source: "m"), source: folder + "/m.json", baseDirectory: folder)
    let records = try MetricsLog.read(path: trainer.folder.metricsPath)
    let losses = records.compactMap { $0.values["loss/total"] }
    #expect(losses.count == 12 && losses.allSatisfy { $0.isFinite && $0 > 0 }, "\(losses)")
    let distances = records.compactMap { $0.values[logged] }
    #expect(distances.count == 12, "\(logged): \(distances)")
    let first = distances.prefix(3).reduce(0, +) / 3, last = distances.suffix(3).reduce(0, +) / 3
    #expect(last < first, "\(logged) did not fall: \(distances)")
  }
}
