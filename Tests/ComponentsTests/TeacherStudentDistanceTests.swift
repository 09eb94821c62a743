import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillNN
import DistillTestSupport
import Foundation
import TeacherStudentDistance
import Testing

@testable import CaptionsData
@testable import DistillPipeline

/// An image teacher for tests: the 16x16 UNet fixture of DistillNNTests with `sample_size`
/// set to `size` (the weights do not depend on it), as a diffusers folder `folder/teacher`.
func imageTeacherFolder(in folder: String, size: Int = 32) throws -> String {
  let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("DistillNNTests/Fixtures/ddpm-style").path
  let teacher = folder + "/teacher"
  if FileManager.default.fileExists(atPath: teacher) { return teacher }
  try FileManager.default.createDirectory(atPath: teacher, withIntermediateDirectories: true)
  try FileManager.default.copyItem(
    atPath: fixture + "/diffusion_pytorch_model.safetensors", toPath: teacher + "/diffusion_pytorch_model.safetensors")
  guard case .object(var config) = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: fixture + "/config.json")), source: "config")
  else { throw DistillError.malformed(path: fixture, detail: "config") }
  config["sample_size"] = .number(Double(size))
  try Data(JSONValue.object(config).text().utf8).write(to: URL(fileURLWithPath: teacher + "/config.json"))
  return teacher
}

/// LPIPS weights with a random trunk (seeded) written to `folder/lpips-<net>.safetensors`:
/// enough to test the plumbing, not LPIPS.
func randomLPIPSWeights(_ network: LPIPS.Network, in folder: String) throws -> String {
  let path = folder + "/lpips-\(network.rawValue).safetensors"
  try SafetensorsFile.write(LPIPS(network: network, seed: 1).stateDict(), to: path)
  return path
}

@Suite struct TeacherStudentDistanceTests {
  @Test func handComputation() throws {
    var calls = 0
    let metric = TeacherStudentDistanceMetric(count: 2, lpips: nil) { noise in
      calls += 1
      return noise * 2
    }
    // Three noise rows, two compared: the teacher gives [0, 0] and [2, -2].
    let context = EvaluationContext(
      teacher: nil, data: nil, noise: { Tensor(shape: [3, 2], scalars: [0, 0, 1, -1, 5, 5]) }, reference: { _ in nil })
    let samples = Tensor(shape: [3, 2], scalars: [1, 0, 2, -2, 9, 9])
    let values = try metric.evaluate(samples, context)
    // Distances 1 and 0; squared differences 1, 0, 0, 0.
    #expect(values == ["teacher-student-l2": 0.5, "teacher-student-mse": 0.25])
    _ = try metric.evaluate(samples, context)
    #expect(calls == 1)
  }

  /// A manifest distilling the image teacher into a one-step copy of itself, evaluated with
  /// `metric` before training.
  func evaluateBeforeTraining(
    generator: String = #"{"type": "denoiser", "steps": 1}"#, metric: String, in folder: String
  ) throws -> (Trainer, [String: Double]) {
    _ = try imageTeacherFolder(in: folder)
    let text = """
      {"teacher": {"type": "folder", "path": "teacher"}, "generator": \(generator),
       "losses": [{"type": "knowledge-distillation", "steps": 2}],
       "training": {"steps": 1, "batchSize": 2},
       "evaluation": {"samples": 8, "gridSize": 4, "metrics": [\(metric)]}, "output": "run"}
      """
    return try evaluateBeforeTraining(text, in: folder)
  }

  /// The manifest `text` (relative paths from `folder`) evaluated before training.
  func evaluateBeforeTraining(_ text: String, in folder: String) throws -> (Trainer, [String: Double]) {
    let manifest = try Manifest.decode(
      JSONValue.parse(Data(text.utf8), source: "m"), source: folder + "/m.json", baseDirectory: folder,
      fallbackName: "m", registry: .standard())
    let pipeline = try AssembledPipeline.assemble(manifest, registry: .standard())
    let run = RunFolder(path: manifest.output)
    _ = try run.prepare(for: manifest.resolvedJSON, mode: .fresh)
    let trainer = Trainer(pipeline: pipeline, folder: run, progress: ProgressReporter(style: .silent))
    let log = try MetricsLog(path: run.metricsPath, resumingAt: nil)
    trainer.recorder.sinks = [log]
    try trainer.recorder.evaluate(at: trainer.step)
    try log.finish()
    let records = try MetricsLog.read(path: run.metricsPath)
    return (trainer, try #require(records.last).values)
  }

  @Test func zeroForTheTeachersOneStepEquivalent() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    // The one-step student started at T−1 is the teacher's x̂₀ there, which is what one
    // trailing DDIM step gives (unclamped on both sides: the metric's DDIM does not clip).
    let (trainer, values) = try evaluateBeforeTraining(
      generator: #"{"type": "denoiser", "timesteps": [999], "clipSample": false}"#,
      metric: #"{"type": "teacher-student-distance", "steps": 1, "samples": 8}"#, in: folder)
    let l2 = try #require(values["eval/teacher-student-l2"])
    #expect(l2 < 1e-4, "\(l2)")
    #expect(values["eval/teacher-student-lpips"] == nil)
    let report = try String(contentsOfFile: trainer.folder.reportPath, encoding: .utf8)
    #expect(report.contains("teacher-student-l2"))
  }

  @Test func lpipsOfTheSameNoiseAsComputedByHand() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    _ = try randomLPIPSWeights(.squeeze, in: folder)
    let (trainer, values) = try evaluateBeforeTraining(
      metric: #"{"type": "teacher-student-distance", "steps": 10, "samples": 6, "lpips": {"net": "squeeze", "weights": "lpips-squeeze.safetensors"}}"#,
      in: folder)
    // By hand: the student's samples and the teacher's 10-step DDIM samples of the first 6
    // rows of the evaluation noise, and their distances.
    let pipeline = trainer.pipeline
    let evaluation = pipeline.manifest.evaluation
    let noise = RunRecorder.evaluationNoise(pipeline.generator, count: evaluation.samples, seed: evaluation.seed)
      .sliced(axis: 0, 0..<6)
    let student = try trainer.recorder.withEvaluationWeights { withoutGradients { pipeline.generator(noise) } }
    let teacher = try #require(pipeline.teacher)
    let reference = try withoutGradients {
      try deterministicSample(
        model: { teacher($0, timesteps: $1) }, schedule: teacher.schedule, prediction: teacher.prediction,
        sampler: .ddim, steps: 10, noise: noise, spacing: .trailing)
    }
    let expectedL2 = (student - reference).square().sum(axes: [1, 2, 3]).sqrt().mean().item
    let lpips = try LPIPS.load(network: .squeeze, weightsPath: folder + "/lpips-squeeze.safetensors")
    let expectedLPIPS = withoutGradients { lpips(student, reference) }.mean().item
    let l2 = try #require(values["eval/teacher-student-l2"])
    let measured = try #require(values["eval/teacher-student-lpips"])
    #expect(abs(l2 - Double(expectedL2)) < 1e-4 * Double(expectedL2) && l2 > 1e-3, "\(l2) vs \(expectedL2)")
    #expect(abs(measured - Double(expectedLPIPS)) < 1e-4 * Double(expectedLPIPS) && measured > 0, "\(measured) vs \(expectedLPIPS)")
  }

  /// A latent text-to-image teacher (sd-tiny): the teacher's DDIM latents, asked at each row's
  /// prompt with the entry's guidance, are decoded by its VAE and compared with the student's
  /// decoded samples (before, raw latents met decoded images and the run stopped).
  @Test func latentTeacherSamplesAreDecodedAtEachRowsPrompt() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let captions = try LatentMethodsTests.captionsWithImages(in: folder)
    let (trainer, values) = try evaluateBeforeTraining(
      """
      {"teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
       "data": {"type": "captions", "path": \(JSONValue.quoted(captions))},
       "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
       "losses": [{"type": "knowledge-distillation", "guidance": 3, "steps": 2}],
       "training": {"steps": 1, "batchSize": 2},
       "evaluation": {"samples": 4, "gridSize": 4, "metrics": [
         {"type": "teacher-student-distance", "steps": 2, "samples": 4, "guidance": 3}]}, "output": "run"}
      """, in: folder)
    let pipeline = trainer.pipeline
    let teacher = try #require(pipeline.teacher as? any LatentDenoiser)
    let captionsSource = try #require(pipeline.data as? CaptionSource)
    let noise = RunRecorder.evaluationNoise(pipeline.generator, count: 4, seed: pipeline.manifest.evaluation.seed)
    // Rows 0...3 ask for prompts 0, 1, 2, 0.
    let condition = Condition(embeddings: captionsSource.promptEmbeddings.gatheringRows([0, 1, 2, 0]))
    let student = try trainer.recorder.withEvaluationWeights {
      RunRecorder.generate(pipeline.generator, count: 4, seed: pipeline.manifest.evaluation.seed, batchSize: 4, data: pipeline.data)
    }
    let guided = teacher.guided(3)
    let latents = try withoutGradients {
      try deterministicSample(
        model: guided.model(condition), schedule: teacher.schedule, prediction: teacher.prediction, sampler: .ddim,
        steps: 2, noise: noise, spacing: .trailing)
    }
    let studentImages: Tensor = pipeline.images(student)
    let teacherImages: Tensor = withoutGradients { teacher.decode(latents) }
    #expect(teacherImages.shape == [4, 3, 16, 16])
    let expected = (studentImages - teacherImages).square().sum(axes: [1, 2, 3]).sqrt().mean().item
    let l2 = try #require(values["eval/teacher-student-l2"])
    #expect(abs(l2 - Double(expected)) < 1e-4 * Double(expected) && l2 > 1e-3, "\(l2) vs \(expected)")
  }

  @Test func refusesMoreSamplesThanTheEvaluationHas() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    #expect {
      _ = try evaluateBeforeTraining(metric: #"{"type": "teacher-student-distance", "samples": 9}"#, in: folder)
    } throws: { "\($0)".contains("evaluation.metrics[0].samples") }
  }
}
