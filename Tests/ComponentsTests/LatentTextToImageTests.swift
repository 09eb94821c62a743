import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillTestSupport
import Foundation
import ImageIO
import Testing

@testable import CaptionsData
@testable import DistillPipeline

/// Distillation in latent space from the Stable-Diffusion-layout sd-tiny teacher: prompts from
/// a captions file as the condition, DMD with the real score guided against the empty prompt,
/// evaluation grids decoded through the VAE (issue 17, items 3 and 4).
@Suite(.serialized) struct LatentTextToImageTests {
  static let prompts = ["a red disc", "a blue square", "a sneaker"]

  /// A one-step student of sd-tiny trained with DMD (real score guided by `guidance`) on the
  /// prompts of `captions`, writing to `output`.
  static func manifest(
    captions: String, output: String, steps: Int, guidance: Double = 3,
    fakeLearningRate: Double = 0.001
  ) -> JSONValue {
    let text = """
      {
        "name": "sd-tiny-dmd", "seed": 5,
        "teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
        "data": {"type": "captions", "path": \(JSONValue.quoted(captions))},
        "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
        "scores": {
          "real": {"type": "teacher", "guidanceScale": \(guidance)},
          "fake": {"type": "trained", "init": "teacher", "optimizer": {"type": "adam", "lr": \(fakeLearningRate)}}
        },
        "losses": [{"type": "distribution-matching"}],
        "optimizer": {"type": "adam", "lr": 0.001},
        "training": {"steps": \(steps), "batchSize": 3, "checkpointEvery": 100000, "logEvery": 1},
        "evaluation": {"every": \(steps), "samples": 6, "gridSize": 6, "metrics": []},
        "output": \(JSONValue.quoted(output))
      }
      """
    return try! JSONValue.parse(Data(text.utf8), source: "sd-tiny-dmd")
  }

  static func writeCaptions(in folder: String, _ lines: [String], name: String = "captions.txt")
    throws -> String
  {
    let path = folder + "/" + name
    try (lines.joined(separator: "\n") + "\n").write(
      toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func captionsAreEmbeddedOnceByTheTeachersTextEncoder() throws {
    let folder = temporaryFolder()
    let captions = try Self.writeCaptions(
      in: folder, ["", "  a red disc  ", "a blue square", "", "a sneaker"])
    let manifest = try Manifest.decode(
      Self.manifest(captions: captions, output: folder + "/run", steps: 1), source: "m",
      baseDirectory: folder,
      fallbackName: "m", registry: .standard())
    let pipeline = try AssembledPipeline.assemble(manifest, registry: .standard())
    let source = try #require(pipeline.data as? CaptionSource)
    #expect(source.prompts == Self.prompts)
    let teacher = try #require(pipeline.teacher as? TextToImageDenoiser)
    #expect(source.promptEmbeddings == teacher.encode(prompts: Self.prompts).embeddings)
    #expect(source.sampleShape == [4, 8, 8] && source.latents == nil)
    // Batch rows carry the embeddings of the prompts they drew; the generator takes prompts.
    var rng = RandomGenerator(seed: 1)
    let batch = try source.next(5, using: &rng)
    var again = RandomGenerator(seed: 1)
    let indices = again.integers(count: 5, in: 0..<3)
    #expect(
      batch.embeddings == source.promptEmbeddings.gatheringRows(indices) && batch.samples == nil)
    #expect(pipeline.generator.prompts == teacher.prompts)
    // Evaluation asks for prompt i mod 3 in row i.
    let condition = RunRecorder.evaluationCondition(pipeline.generator, count: 4, data: source)
    #expect(condition.embeddings == source.promptEmbeddings.gatheringRows([0, 1, 2, 0]))
  }

  @Test func jsonLinesPairPromptsWithImagesEncodedToLatents() throws {
    let folder = temporaryFolder()
    var rng = RandomGenerator(seed: 4)
    let images = (0..<2).map { _ in Tensor.uniform([3, 16, 16], using: &rng) * 2 - 1 }
    for (i, image) in images.enumerated() {
      try ImageFile.writePNG(ImageFile.fromSignedUnit(image), to: folder + "/\(i).png")
    }
    let captions = try Self.writeCaptions(
      in: folder,
      [
        #"{"prompt": "a red disc", "image": "0.png"}"#,
        #"{"prompt": "a sneaker", "image": "1.png"}"#,
      ],
      name: "captions.jsonl")
    let manifest = try Manifest.decode(
      Self.manifest(captions: captions, output: folder + "/run", steps: 1), source: "m",
      baseDirectory: folder,
      fallbackName: "m", registry: .standard())
    let pipeline = try AssembledPipeline.assemble(manifest, registry: .standard())
    let source = try #require(pipeline.data as? CaptionSource)
    let teacher = try #require(pipeline.teacher as? TextToImageDenoiser)
    #expect(source.prompts == ["a red disc", "a sneaker"])
    // The PNGs hold 8-bit values: encode what was written, read back.
    let read = try (0..<2).map {
      ImageFile.toSignedUnit(try ImageFile.readRGB(folder + "/\($0).png"))
    }
    let expected = withoutGradients { teacher.pipeline.vae.latents(from: Tensor.stack(read)) }
    let latents = try #require(source.latents)
    #expect(latents.shape == [2, 4, 8, 8])
    #expect(zip(latents.scalars, expected.scalars).map { Swift.abs($0 - $1) }.max()! < 1e-5)
    #expect(source.rows([1]).samples == latents.sliced(axis: 0, 1..<2))
  }

  @Test func captionsFileErrorsNameTheFileLineAndKey() throws {
    let folder = temporaryFolder()
    func refused(_ lines: [String], name: String = "c.jsonl", _ pieces: [String]) throws {
      let path = try Self.writeCaptions(in: folder, lines, name: name)
      expectDistillError(containing: [path] + pieces) { _ = try Caption.read(path) }
    }
    try refused(["", "  "], name: "c.txt", ["holds no prompts"])
    try refused(
      [#"{"prompt": "a"}"#, #"{"text": "b"}"#], [":2: text", "only the keys prompt and image"])
    try refused([#"{"image": "a.png"}"#], [":1: prompt", "expected a string", "found nothing"])
    try refused([#"{"prompt": 3}"#], [":1: prompt", "expected a string"])
    try refused([#"["a"]"#], [":1", "expected an object"])
    try refused(
      [#"{"prompt": "a", "image": "a.png"}"#, #"{"prompt": "b"}"#],
      [":2: image", "on every line or on none"])
    #expect(
      try Caption.read(
        try Self.writeCaptions(in: folder, [#"{"prompt": "a \"b\""}"#], name: "ok.jsonl")) == [
          Caption(prompt: "a \"b\"")
        ])
  }

  /// DMD in latent space: the one-step student moves, its fake score trains, the real score's
  /// guidance shows in the DM gradient, and the grid is the VAE's decoding of the student's latents.
  @Test func guidedDMDTrainsAOneStepLatentStudentAndDecodesItsGrid() throws {
    let folder = temporaryFolder()
    let captions = try Self.writeCaptions(in: folder, Self.prompts)
    let json = Self.manifest(captions: captions, output: folder + "/run", steps: 4)
    let untrained = try AssembledPipeline.assemble(
      Manifest.decode(
        json, source: "m", baseDirectory: folder, fallbackName: "m", registry: .standard()),
      registry: .standard())
    let trainer = try train(json, baseDirectory: folder)
    let pipeline = trainer.pipeline
    let data = try #require(pipeline.data)
    let before = RunRecorder.generate(
      untrained.generator, count: 6, seed: 11, batchSize: 6, data: data)
    let after = RunRecorder.generate(
      pipeline.generator, count: 6, seed: 11, batchSize: 6, data: data)
    #expect(before.shape == [6, 4, 8, 8])
    let moved = zip(before.scalars, after.scalars).map { Swift.abs($0 - $1) }.max()!
    #expect(moved > 1e-4, "the student's latents moved by at most \(moved)")

    let records = try MetricsLog.read(path: RunFolder(path: folder + "/run").metricsPath)
    let disagreement = records.compactMap { $0.values["dm/score-disagreement"] }
    #expect(disagreement.count == 4 && disagreement.allSatisfy { $0.isFinite && $0 > 0 })
    print("sd-tiny DMD, guidance 3: dm/score-disagreement \(disagreement)")

    // The grid: 6 decoded 16x16 RGB images, the VAE's decoding of the student's latents.
    let grid = try ImageFile.read(folder + "/run/samples/step-00000004.png")
    #expect(grid.shape[0] == 3 && grid.shape[1] >= 16 && grid.shape[2] >= 3 * 16)
    // The run's denoiser folder is a Stable-Diffusion-layout student that loads as a teacher.
    let student = try #require(
      try loadTeacher(path: folder + "/run/denoiser") as? TextToImageDenoiser)
    let noise = RunRecorder.evaluationNoise(pipeline.generator, count: 2, seed: 3)
    let condition = RunRecorder.evaluationCondition(pipeline.generator, count: 2, data: data)
    let generator = try #require(pipeline.generator as? any DenoiserGenerator)
    let t = [Float](repeating: 999, count: 2)
    let exported = withoutGradients { student(noise, timesteps: t, condition: condition) }
    let live = withoutGradients { generator.denoiser(noise, timesteps: t, condition: condition) }
    #expect(zip(exported.scalars, live.scalars).map { Swift.abs($0 - $1) }.max()! < 1e-6)

    // `pipeline sample --run` writes images: the VAE's decoding of the trained student's
    // latents for the captions' prompts, as evaluation makes them.
    let out = folder + "/samples.safetensors"
    let result = try runPipeline(["sample", "--run", folder + "/run", "--count", "6", "--seed", "11", "--out", out])
    #expect(result.status == 0, "\(result.error)")
    let written = try SafetensorsFile.read(contentsOf: out).tensor("samples")
    let expected = pipeline.images(after)
    #expect(written.shape == [6, 3, 16, 16])
    #expect(zip(written.scalars, expected.scalars).map { Swift.abs($0 - $1) }.max()! < 1e-5)
    // `pipeline export` is for UNet2DModel students; a text-to-image run is pointed to its denoiser/.
    let export = try runPipeline(["export", "--run", folder + "/run", "--out", folder + "/exported"])
    #expect(export.status == 2 && export.error.contains("already a Stable-Diffusion-layout folder"), "\(export.error)")
    #expect(!FileManager.default.fileExists(atPath: folder + "/exported"))
    // Nor does `generate` sample it: it points to `sample-teacher` (W24).
    let generate = try runPipeline([
      "generate", "--student", folder + "/run/denoiser", "--count", "2", "--out", folder + "/g.png",
    ])
    #expect(
      generate.status == 2 && generate.error.contains("sample it with `pipeline sample-teacher"), "\(generate.error)")
    #expect(!FileManager.default.fileExists(atPath: folder + "/g.png"))
  }

  @Test func guidanceOfTheRealScoreChangesTheDMGradient() throws {
    let folder = temporaryFolder()
    let captions = try Self.writeCaptions(in: folder, Self.prompts)
    func disagreement(_ guidance: Double) throws -> Double {
      let json = Self.manifest(
        captions: captions, output: folder + "/run-\(guidance)", steps: 1, guidance: guidance,
        fakeLearningRate: 0)
      try train(json, baseDirectory: folder)
      let records = try MetricsLog.read(
        path: RunFolder(path: folder + "/run-\(guidance)").metricsPath)
      return try #require(records.first?.values["dm/score-disagreement"])
    }
    // The fake score is a copy of the teacher that does not learn here (lr 0): unguided, real
    // and fake agree; guided, they differ by the guidance term.
    #expect(try disagreement(1) < 1e-6)
    #expect(try disagreement(3) > 1e-4)
  }

  /// Knowledge distillation with prompts: the one-step student regresses the teacher's guided
  /// DDIM latents for each row's prompt, and the distance falls.
  @Test func knowledgeDistillationWithPromptsRegressesTheGuidedTeacher() throws {
    let folder = temporaryFolder()
    let captions = try Self.writeCaptions(in: folder, Self.prompts)
    let text = """
      {
        "name": "sd-tiny-kd", "seed": 2,
        "teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
        "data": {"type": "captions", "path": \(JSONValue.quoted(captions))},
        "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
        "losses": [{"type": "knowledge-distillation", "guidance": 3, "steps": 4}],
        "optimizer": {"type": "adam", "lr": 0.0001},
        "training": {"steps": 4, "batchSize": 3, "checkpointEvery": 100000, "logEvery": 1},
        "evaluation": {"every": 4, "samples": 3, "metrics": []},
        "output": \(JSONValue.quoted(folder + "/run"))
      }
      """
    try train(JSONValue.parse(Data(text.utf8), source: "kd"), baseDirectory: folder)
    let records = try MetricsLog.read(path: RunFolder(path: folder + "/run").metricsPath)
    let distances = records.compactMap { $0.values["kd/distance"] }
    print("sd-tiny knowledge distillation, guidance 3: kd/distance \(distances)")
    #expect(distances.count == 4 && distances.allSatisfy(\.isFinite))
    #expect(distances.last! < 0.9 * distances.first!, "kd/distance \(distances)")
  }
}
