import DistillDiffusion
import Foundation

// `pipeline sample-teacher` of a Stable-Diffusion-layout folder.

/// Images `[N, 3, H, W]` in [−1, 1] of `pipeline` for `prompts`, in `steps` DDIM steps with
/// `guidance`, from the `latents` tensor of `latentsPath` or standard normal latents of `seed`.
/// A prompt longer than the text encoder's positions is truncated, and `warn` says so.
///
/// - Throws: ``DistillError`` naming the file or flag: no prompt, a sampler other than DDIM,
///   latents of another shape than `[prompts, latent channels, size, size]`.
func sampleTextToImage(
  _ pipeline: StableDiffusionFolder, prompts: [String], guidance: Double, sampler: TeacherSamplerKind, steps: Int,
  latentsPath: String?, seed: UInt64, warn: (String) -> Void
) throws -> Tensor {
  guard !prompts.isEmpty else {
    throw DistillError.invalidValue(location: "--prompt", expected: "at least one prompt for a text-to-image teacher", found: "none")
  }
  guard sampler == .ddim else {
    throw DistillError.invalidValue(
      location: "--sampler", expected: "ddim (the folder's scheduler) for a text-to-image teacher", found: sampler.rawValue)
  }
  guard steps >= 1, steps <= pipeline.schedule.trainSteps else {
    throw DistillError.invalidValue(location: "--steps", expected: "1...\(pipeline.schedule.trainSteps)", found: String(steps))
  }
  let config = pipeline.unet.config
  let size = config.sampleSize ?? 64
  let shape = [prompts.count, config.inChannels, size, size]
  let latents: Tensor
  if let latentsPath {
    latents = try SafetensorsFile.read(contentsOf: latentsPath).tensor("latents")
    guard latents.shape == shape else {
      throw DistillError.invalidValue(
        location: "\(latentsPath): latents", expected: "shape \(shape) (one latent per prompt)", found: "\(latents.shape)")
    }
  } else {
    var rng = RandomGenerator(seed: seed)
    latents = Tensor.normal(shape, using: &rng)
  }
  for (prompt, dropped) in zip(prompts, pipeline.encode(prompts: prompts).truncated) where dropped > 0 {
    warn("warning: the prompt \"\(prompt)\" is longer than the text encoder's \(pipeline.tokenizer.maximumLength) positions; its last \(dropped) tokens were dropped")
  }
  return pipeline.sample(prompts: prompts, guidance: guidance, steps: steps, latents: latents) * 2 - 1
}
