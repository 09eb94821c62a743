import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillNN
import DistillTestSupport
import Foundation
import ImageIO
import Testing

@testable import AdversarialDistillation
@testable import CaptionsData
@testable import DMD2GAN
@testable import DistillPipeline

/// The other distillation methods on the sd-tiny text-to-image teacher, in latent space: ADD
/// and DMD2's GAN read the conditional UNet's features with each row's prompt, progressive and
/// consistency distillation ask the guided teacher at each row's prompt (issue 17, item 4).
@Suite(.serialized) struct LatentMethodsTests {
  /// Captions paired with random 16x16 images (the VAE's size for sd-tiny's 8x8 latents), so
  /// that the data has latents: the real side of the discriminators, the data PD and CD noise.
  static func captionsWithImages(in folder: String) throws -> String {
    var rng = RandomGenerator(seed: 9)
    let prompts = ["a red disc", "a blue square", "a sneaker"]
    for i in prompts.indices {
      let image = Tensor.uniform([3, 16, 16], using: &rng) * 2 - 1
      try ImageFile.writePNG(ImageFile.fromSignedUnit(image), to: folder + "/\(i).png")
    }
    let lines = prompts.enumerated().map { #"{"prompt": "\#($1)", "image": "\#($0).png"}"# }
    return try LatentTextToImageTests.writeCaptions(in: folder, lines, name: "captions.jsonl")
  }

  /// A run on sd-tiny with `captions`, `body` the generator, scores and losses, and `steps`
  /// steps of batch 2; returns the metrics it logged.
  static func run(
    _ body: String, captions: String, in folder: String, steps: Int, learningRate: Double = 0.0001
  )
    throws -> [[String: Double]]
  {
    let json = manifest(
      body, captions: captions, in: folder, steps: steps, learningRate: learningRate)
    try train(json, baseDirectory: folder)
    return try MetricsLog.read(path: RunFolder(path: folder + "/run").metricsPath).map(\.values)
  }

  /// The pipeline of that run, untrained.
  static func assembled(_ body: String, captions: String, in folder: String) throws
    -> AssembledPipeline
  {
    let json = manifest(body, captions: captions, in: folder, steps: 1)
    return try AssembledPipeline.assemble(
      Manifest.decode(
        json, source: "m", baseDirectory: folder, fallbackName: "m", registry: .standard()),
      registry: .standard())
  }

  static func manifest(
    _ body: String, captions: String, in folder: String, steps: Int, learningRate: Double = 0.0001
  ) -> JSONValue {
    let text = """
      {
        "name": "sd-tiny-method", "seed": 4,
        "teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
        "data": {"type": "captions", "path": \(JSONValue.quoted(captions))},
        \(body),
        "optimizer": {"type": "adam", "lr": \(learningRate)},
        "training": {"steps": \(steps), "batchSize": 2, "checkpointEvery": 100000, "logEvery": 1},
        "evaluation": {"every": \(steps), "samples": 2, "metrics": []},
        "output": \(JSONValue.quoted(folder + "/run"))
      }
      """
    return try! JSONValue.parse(Data(text.utf8), source: "m")
  }

  /// Two latents and the embeddings of the captions' prompts 0 and 2 of `pipeline`.
  static func promptedInput(_ pipeline: AssembledPipeline) throws -> (
    x: Tensor, condition: Condition
  ) {
    let captions = try #require(pipeline.data as? CaptionSource)
    var rng = RandomGenerator(seed: 6)
    return (
      Tensor.normal([2, 4, 8, 8], using: &rng),
      Condition(embeddings: captions.promptEmbeddings.gatheringRows([0, 2]))
    )
  }

  /// The largest difference of two tensors' values.
  static func largestDifference(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).map { Swift.abs($0 - $1) }.max()!
  }

  /// The conditional UNet's features depend on the prompt, and are the down path of its
  /// forward pass: the mid block's output changes with the prompt's embedding.
  @Test func conditionalUNetFeaturesReadThePrompt() throws {
    let teacher = try TextToImageDenoiser(folder: sdTinyFixture)
    var rng = RandomGenerator(seed: 2)
    let x = Tensor.normal([2, 4, 8, 8], using: &rng)
    let embeddings = teacher.encode(prompts: ["a red disc", "a sneaker"]).embeddings
    let prompted = withoutGradients {
      teacher.features(x, timesteps: [500, 500], condition: Condition(embeddings: embeddings))
    }
    let empty = withoutGradients { teacher.features(x, timesteps: [500, 500]) }
    let emptyAgain = withoutGradients {
      teacher.features(
        x, timesteps: [500, 500],
        condition: Condition(embeddings: teacher.encode(prompts: ["", ""]).embeddings))
    }
    #expect(prompted.encoder.map(\.shape) == [[2, 32, 4, 4], [2, 64, 4, 4]])
    #expect(prompted.bottleneck.shape == [2, 64, 4, 4])
    #expect(empty.bottleneck == emptyAgain.bottleneck)
    let moved = zip(prompted.bottleneck.scalars, empty.bottleneck.scalars).map {
      Swift.abs($0 - $1)
    }.max()!
    #expect(moved > 1e-4, "the mid block's output moved by \(moved) with the prompt")
  }

  /// ADD on sd-tiny: heads on the frozen teacher's conditional features, the student's input
  /// the data's latents noised at its timesteps; the discriminator's loss moves and stays finite.
  @Test func adversarialDistillationRunsOnTheConditionalUNet() throws {
    let folder = temporaryFolder()
    let captions = try Self.captionsWithImages(in: folder)
    let body = """
      "generator": {"type": "denoiser", "init": "teacher", "timesteps": [999, 499], "trainingInput": "noised-data"},
      "losses": [{"type": "adversarial-distillation", "features": "teacher", "guidance": 3}]
      """
    // The heads' features are the teacher's at each row's prompt.
    let pipeline = try Self.assembled(body, captions: captions, in: folder)
    let term = try #require(pipeline.losses[0].term as? AdversarialDistillationTerm)
    let (x, condition) = try Self.promptedInput(pipeline)
    let prompted = withoutGradients { term.encoderFeatures(x, condition) }
    let empty = withoutGradients { term.encoderFeatures(x, .none) }
    #expect(prompted.map(\.shape) == [[2, 32, 4, 4], [2, 64, 4, 4]])
    #expect(Self.largestDifference(prompted[1], empty[1]) > 1e-4)

    let records = try Self.run(body, captions: captions, in: folder, steps: 4)
    let discriminator = records.compactMap { $0["add/discriminator-loss"] }
    let adversarial = records.compactMap { $0["add/adversarial-loss"] }
    print(
      "sd-tiny ADD: add/discriminator-loss \(discriminator), add/adversarial-loss \(adversarial)")
    #expect(discriminator.count >= 4 && discriminator.allSatisfy(\.isFinite))
    #expect(Set(discriminator).count > 1, "the discriminator loss did not move: \(discriminator)")
    #expect(adversarial.count == 4 && adversarial.allSatisfy(\.isFinite))
  }

  /// DMD2 on sd-tiny: DM with the real score guided, and the GAN head on the fake score's
  /// mid-block output at each row's prompt; the discriminator's loss moves and stays finite.
  @Test func dmd2GANRunsOnTheConditionalUNet() throws {
    let folder = temporaryFolder()
    let captions = try Self.captionsWithImages(in: folder)
    let body = """
      "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
      "scores": {
        "real": {"type": "teacher", "guidanceScale": 3},
        "fake": {"type": "trained", "init": "teacher", "optimizer": {"type": "adam", "lr": 0.001}}
      },
      "losses": [{"type": "distribution-matching"}, {"type": "dmd2-gan", "discriminatorWeight": 1}]
      """
    // The head reads the fake score's mid block at each row's prompt.
    let pipeline = try Self.assembled(body, captions: captions, in: folder)
    let term = try #require(pipeline.losses[1].term as? DMD2GANTerm)
    let (x, condition) = try Self.promptedInput(pipeline)
    var rng = RandomGenerator(seed: 7)
    let noise = Tensor.normal(x.shape, using: &rng)
    func logits(_ condition: Condition) -> Tensor {
      withoutGradients {
        term.logits(
          x, noise: noise, t: [300, 300], schedule: pipeline.teacher!.schedule, condition: condition
        )
      }
    }
    #expect(Self.largestDifference(logits(condition), logits(.none)) > 1e-5)

    let records = try Self.run(body, captions: captions, in: folder, steps: 4)
    let discriminator = records.compactMap { $0["gan/discriminator-loss"] }
    let generator = records.compactMap { $0["gan/generator-logit"] }
    print("sd-tiny DMD2: gan/discriminator-loss \(discriminator), gan/generator-logit \(generator)")
    #expect(discriminator.count >= 4 && discriminator.allSatisfy(\.isFinite))
    #expect(Set(discriminator).count > 1, "the discriminator loss did not move: \(discriminator)")
    #expect(generator.count == 4 && generator.allSatisfy(\.isFinite))
  }

  /// The first step's value of `key` with the loss `loss` at guidance 1 and at 3: guidance
  /// against the empty prompt changes the teacher's targets only where the rows' prompts reach
  /// the teacher (an unconditional call is the empty prompt, where guidance does nothing).
  static func firstStepWithAndWithoutGuidance(_ body: (Double) -> String, key: String) throws -> (
    Double, Double
  ) {
    func first(_ guidance: Double) throws -> Double {
      let folder = temporaryFolder()
      let records = try run(
        body(guidance), captions: try captionsWithImages(in: folder), in: folder, steps: 1)
      return try #require(records.first?[key])
    }
    return (try first(1), try first(3))
  }

  /// Progressive distillation with prompts, the guidance distilled: a 2-step student of the
  /// guided teacher's 4 steps; its distance falls, and guidance changes its targets.
  @Test func progressiveDistillationWithPromptsOnTheTextTeacher() throws {
    func body(_ guidance: Double) -> String {
      """
      "generator": {"type": "denoiser", "init": "teacher", "steps": 2},
      "losses": [{"type": "progressive-distillation", "startSteps": 4, "roundSteps": [6], "guidance": \(guidance)}]
      """
    }
    let folder = temporaryFolder()
    let captions = try Self.captionsWithImages(in: folder)
    let records = try Self.run(
      body(3), captions: captions, in: folder, steps: 6, learningRate: 0.0003)
    let distances = records.compactMap { $0["pd/distance"] }
    print("sd-tiny progressive distillation, guidance 3: pd/distance \(distances)")
    #expect(distances.count == 6 && distances.allSatisfy(\.isFinite))
    #expect(distances.last! < distances.first!, "pd/distance \(distances)")
    let (unguided, guided) = try Self.firstStepWithAndWithoutGuidance(body, key: "pd/distance")
    print(
      "sd-tiny progressive distillation, first step: pd/distance \(unguided) unguided, \(guided) guided"
    )
    #expect(
      Swift.abs(guided - unguided) > 1e-3 * unguided,
      "pd/distance \(unguided) unguided, \(guided) guided")
  }

  /// Consistency distillation with prompts, the guidance distilled: the consistency student of
  /// sd-tiny trains with finite distances, and guidance changes its targets.
  @Test func consistencyDistillationWithPromptsOnTheTextTeacher() throws {
    func body(_ guidance: Double) -> String {
      """
      "generator": {"type": "consistency", "init": "teacher"},
      "losses": [{"type": "consistency-distillation", "gridPoints": 10, "guidance": \(guidance)}]
      """
    }
    let folder = temporaryFolder()
    let captions = try Self.captionsWithImages(in: folder)
    let records = try Self.run(body(3), captions: captions, in: folder, steps: 6)
    let distances = records.compactMap { $0["cd/distance"] }
    print("sd-tiny consistency distillation, guidance 3: cd/distance \(distances)")
    #expect(distances.count == 6 && distances.allSatisfy { $0.isFinite && $0 > 0 })
    let (unguided, guided) = try Self.firstStepWithAndWithoutGuidance(body, key: "cd/distance")
    print(
      "sd-tiny consistency distillation, first step: cd/distance \(unguided) unguided, \(guided) guided"
    )
    #expect(
      Swift.abs(guided - unguided) > 1e-3 * unguided,
      "cd/distance \(unguided) unguided, \(guided) guided")
  }
}
