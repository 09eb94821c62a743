import DistillCore
import DistillTestSupport
import Foundation
import Testing

@testable import DistillDiffusion

/// The SD-layout UNet as a text-conditional latent denoiser: prompts as a condition, the
/// empty prompt as the unconditional input and the null of guidance, copies and saving.
@Suite struct TextToImageDenoiserTests {
  static func latents(_ n: Int, seed: UInt64 = 3) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    return Tensor.normal([n, 4, 8, 8], using: &rng)
  }

  @Test func loadsAsAFolderTeacherOfLatentsAndPrompts() throws {
    let teacher = try loadTeacher(path: sdTinyFixture)
    let text = try #require(teacher as? TextToImageDenoiser)
    #expect(text.sampleShape == [4, 8, 8])
    #expect(text.prompts?.length == 77 && text.prompts?.width == 32)
    #expect(text.prediction == .epsilon && text.classes == nil)
    // The null embedding is the text encoder's for the empty prompt.
    #expect(text.promptConditioning.null == text.pipeline.encode(prompts: [""]).states)
    try text.validateInput(shape: [2, 4, 8, 8], location: "x")
    expectDistillError(containing: ["x", "[2, 3, 8, 8]"]) {
      try text.validateInput(shape: [2, 3, 8, 8], location: "x")
    }
  }

  @Test func promptsConditionTheUNetAndTheUnconditionalCallIsTheEmptyPrompt() throws {
    let text = try TextToImageDenoiser(folder: sdTinyFixture)
    let x = Self.latents(2)
    let t: [Float] = [500, 20]
    let prompts = text.encode(prompts: ["a red disc", "a blue square"]).embeddings
    let conditional = withoutGradients {
      text(x, timesteps: t, condition: Condition(embeddings: prompts))
    }
    let direct = withoutGradients { text.unet(x, timesteps: t, encoderHiddenStates: prompts) }
    #expect(conditional == direct)
    let empty = text.encode(prompts: ["", ""]).embeddings
    let unconditional = withoutGradients { text(x, timesteps: t) }
    #expect(
      unconditional == withoutGradients { text.unet(x, timesteps: t, encoderHiddenStates: empty) })
    #expect(maxAbsDifference(conditional, unconditional) > 1e-4)
  }

  @Test func guidanceCombinesThePromptAndTheEmptyPrompt() throws {
    let text = try TextToImageDenoiser(folder: sdTinyFixture)
    let x = Self.latents(3)
    let t: [Float] = [999, 400, 1]
    let prompts = text.encode(prompts: ["a red disc", "a sneaker", "a blue square"]).embeddings
    let condition = Condition(embeddings: prompts)
    let guidedDenoiser = text.guided(3)
    let guided = withoutGradients { guidedDenoiser(x, timesteps: t, condition: condition) }
    let conditional = withoutGradients { text(x, timesteps: t, condition: condition) }
    let unconditional = withoutGradients { text(x, timesteps: t) }
    let expected = unconditional + (conditional - unconditional) * 3
    #expect(maxAbsDifference(guided, expected) < 1e-5)
    // Guidance of an unconditional call is the unconditional output.
    #expect(withoutGradients { guidedDenoiser(x, timesteps: t, condition: .none) } == unconditional)
    // Rows of a prompt condition are its embeddings' rows.
    #expect(condition.rows(1..<3).embeddings == prompts.sliced(axis: 0, 1..<3))
  }

  @Test func aCopyIsTrainableOnItsOwnAndSavesInTheStableDiffusionLayout() throws {
    let text = try TextToImageDenoiser(folder: sdTinyFixture)
    let copy = try #require(
      try DenoiserFolder.copy(of: text, prediction: .vPrediction) as? TextToImageDenoiser)
    #expect(copy.unet !== text.unet && copy.prediction == .vPrediction)
    let x = Self.latents(2)
    let t: [Float] = [700, 10]
    #expect(
      withoutGradients { copy(x, timesteps: t) } == withoutGradients { text(x, timesteps: t) })
    let first = try #require(copy.unet.namedParameters().first).parameter
    first.assign(first.value + 0.5)
    #expect(
      withoutGradients { copy(x, timesteps: t) } != withoutGradients { text(x, timesteps: t) })

    let folder = try makeTemporaryFolder("sd-student")
    try copy.save(folder: folder)
    let loaded = try #require(try loadTeacher(path: folder) as? TextToImageDenoiser)
    #expect(loaded.prediction == .vPrediction)
    #expect(
      withoutGradients { loaded(x, timesteps: t) } == withoutGradients { copy(x, timesteps: t) })
    #expect(loaded.promptConditioning == copy.promptConditioning)
  }

  @Test func decodingIsTheVAEsImagesOfTheScaledLatents() throws {
    let text = try TextToImageDenoiser(folder: sdTinyFixture)
    let z = Self.latents(2)
    let images = withoutGradients { text.decode(z) }
    let vae = text.pipeline.vae
    #expect(images.shape == [2, 3, 16, 16])
    let expected = withoutGradients { vae.decode(z / vae.config.scalingFactor) }.clamp(
      min: -1, max: 1)
    #expect(maxAbsDifference(images, expected) < 1e-6)
  }

  func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).map { Swift.abs($0 - $1) }.max()!
  }
}
