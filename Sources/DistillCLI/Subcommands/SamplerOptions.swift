import ArgumentParser
import DistillDiffusion

/// Options shared by the commands that sample a teacher (`sample-teacher`, `precompute`).
struct SamplerOptions: ParsableArguments {
  @Option(help: "The teacher's sampler: ddim, euler, heun (deterministic) or ddpm (ancestral).")
  var sampler: TeacherSamplerKind = .ddim

  @Option(help: "Sampling steps.")
  var steps = 50

  @Option(help: "Samples per network call (precompute records it in pairs.json: it is part of what fixes the pairs).")
  var batchSize = 64

  @Option(help: "Classifier-free guidance scale for a class-conditional teacher with a null class (1: none).")
  var guidance: Double = 1

  @Flag(help: "Clamp x̂₀ to [-1, 1] in DDPM/DDIM steps (diffusers' clip_sample; for image models).")
  var clipSample = false
}
