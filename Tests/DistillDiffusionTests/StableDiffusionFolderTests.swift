import DistillCore
import DistillTestSupport
import Foundation
import Testing

@testable import DistillDiffusion

/// The whole text-to-image pipeline of a Stable-Diffusion-layout folder against diffusers'
/// `StableDiffusionPipeline` on sd-tiny: two prompts, 4 DDIM steps, guidance 3 with the empty
/// prompt as the unconditional input, fixed initial latents (`pipeline_latents` ->
/// `pipeline_images`, NHWC in [0, 1]).
@Suite struct StableDiffusionFolderTests {
  @Test func imagesMatchDiffusersPipeline() throws {
    let pipeline = try StableDiffusionFolder(folder: sdTinyFixture)
    #expect(pipeline.sampler.spacing == .leading && pipeline.sampler.stepsOffset == 1 && !pipeline.sampler.setAlphaToOne)
    let io = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/io.safetensors")
    guard case .array(let items) = try JSONValue.parse(Data(io.metadata["pipeline_prompts"]!.utf8), source: "io") else {
      throw DistillError.malformed(path: "io", detail: "no prompts")
    }
    let prompts = items.map { item -> String in if case .string(let s) = item { return s } else { return "" } }
    let images = pipeline.sample(prompts: prompts, guidance: 3, steps: 4, latents: try io.tensor("pipeline_latents"))
    let expected = try io.tensor("pipeline_images").permuted([0, 3, 1, 2])
    #expect(images.shape == expected.shape)
    let difference = zip(images.scalars, expected.scalars).map { Swift.abs($0 - $1) }.max()!
    #expect(difference < 1e-3, "max |difference| \(difference)")
    // Guidance changes the images.
    let unguided = pipeline.sample(prompts: prompts, guidance: 1, steps: 4, latents: try io.tensor("pipeline_latents"))
    #expect(zip(unguided.scalars, images.scalars).map { Swift.abs($0 - $1) }.max()! > 1e-3)
  }

  @Test func aModelIndexNamingAnotherComponentIsRefused() throws {
    let folder = try makeTemporaryFolder("sd-folder")
    for name in ["tokenizer", "text_encoder", "unet", "vae", "scheduler"] {
      try FileManager.default.createSymbolicLink(atPath: folder + "/" + name, withDestinationPath: sdTinyFixture + "/" + name)
    }
    let index = try String(contentsOfFile: sdTinyFixture + "/model_index.json", encoding: .utf8)
    try index.replacingOccurrences(of: "\"DDIMScheduler\"", with: "\"EulerDiscreteScheduler\"")
      .write(toFile: folder + "/model_index.json", atomically: true, encoding: .utf8)
    expectDistillError(containing: [folder + "/model_index.json", "scheduler", "EulerDiscreteScheduler"]) {
      _ = try StableDiffusionFolder(folder: folder)
    }
    try index.replacingOccurrences(of: "\"vae\": [", with: "\"autoencoder\": [")
      .write(toFile: folder + "/model_index.json", atomically: true, encoding: .utf8)
    expectDistillError(containing: [folder + "/model_index.json", "vae", "nothing"]) {
      _ = try StableDiffusionFolder(folder: folder)
    }
  }
}
