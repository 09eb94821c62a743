import ArgumentParser
import DistillDiffusion
import DistillPipeline
import Foundation

/// `pipeline sample-teacher`: samples drawn from a teacher with a reference sampler.
struct SampleTeacherCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sample-teacher",
    abstract: "Draw samples from a teacher with DDPM, DDIM, Euler or Heun.",
    discussion: """
      --out FILE.safetensors writes the tensor `samples` [count, ...] (float32); --out FILE.png \
      writes an image grid. Outputs are written to a temporary file and renamed, replacing an \
      existing file. The initial noise comes from --seed and does not depend on --batch-size \
      (DDPM's per-step noise does). Progress goes to standard error. Exit status 2 for bad input \
      (missing file, bad weights, unsupported config, bad option values), 1 otherwise.
      """)

  @Option(help: "The teacher folder (Distillery denoiser, diffusers UNet2DModel or pipeline folder).")
  var teacher: String

  @OptionGroup var sampling: SamplerOptions

  @Option(help: "Number of samples.")
  var count: Int = 64

  @Option(help: "Random seed.")
  var seed: UInt64 = 0

  @Option(help: "Image height and width, for a UNet whose config has no sample_size (or to override it).")
  var size: Int?

  @Option(
    name: .customLong("class"),
    help: "The class of every sample, for a class-conditional teacher (default: sample i of class i mod classes).")
  var classLabel: Int?

  @Option(help: "A prompt, for a text-to-image (Stable-Diffusion-layout) teacher; repeat for several samples.")
  var prompt: [String] = []

  @Option(help: "A safetensors file whose \"latents\" [prompts, 4, h, w] are the initial noise of a text-to-image teacher.")
  var latents: String?

  @Option(help: "DDPM/DDIM timestep spacing.")
  var spacing: TimestepSpacing = .leading

  @Option(help: "Output file: .safetensors (tensor `samples`) or .png (image grid).")
  var out: String

  @Option(
    name: .customLong("weight-format"),
    help: "The format of the teacher network's product weights: fp32, or bf16 (held in bfloat16, half the memory, products on the bfloat16 kernels; needs AVX512-BF16).")
  var weightFormat: WeightFormat = .fp32

  func run() throws {
    try runReportingErrors {
      let ext = (out as NSString).pathExtension.lowercased()
      guard ext == "safetensors" || ext == "png" else {
        throw DistillError.invalidValue(location: "--out", expected: "a .safetensors or .png path", found: out)
      }
      if let size, size < 1 {
        throw DistillError.invalidValue(location: "--size", expected: "a positive integer", found: String(size))
      }
      if StableDiffusionFolder.isTextToImage(folder: teacher) {
        try requireSupported(weightFormat, location: "--weight-format")
        let pipeline = try StableDiffusionFolder(folder: teacher)
        pipeline.unet.holdProductWeights(in: weightFormat)
        let samples = try sampleTextToImage(
          pipeline, prompts: prompt, guidance: sampling.guidance, sampler: sampling.sampler, steps: sampling.steps,
          latentsPath: latents, seed: seed, warn: printError)
        try writeSamples(
          samples, to: out,
          metadata: ["teacher": teacher, "steps": String(sampling.steps), "guidance": String(sampling.guidance)])
        print("wrote \(out): samples \(samples.shape) (ddim, \(sampling.steps) steps, guidance \(sampling.guidance))")
        return
      }
      guard prompt.isEmpty, latents == nil else {
        throw DistillError.invalidValue(
          location: prompt.isEmpty ? "--latents" : "--prompt", expected: "no prompts or latents for a teacher that takes no text",
          found: prompt.first ?? latents ?? "")
      }
      let denoiser = try loadTeacher(path: teacher)
      try holdWeights(of: denoiser, in: weightFormat, location: "--weight-format")
      printError("teacher: \(denoiser.summary)")
      var shape = denoiser.sampleShape
      if let size {
        guard let unet = denoiser as? UNetDenoiser else {
          throw DistillError.invalidValue(
            location: "--size", expected: "no --size for a teacher that is not an image UNet", found: String(size))
        }
        shape = [unet.unet.config.inChannels, size, size]
      }
      let options = TeacherSamplingOptions(
        sampler: sampling.sampler, steps: sampling.steps, count: count, seed: seed, batchSize: sampling.batchSize,
        sampleShape: shape, clipSample: sampling.clipSample, spacing: spacing, guidance: sampling.guidance,
        classLabel: classLabel)
      // Network evaluations over all batches: on a terminal one line rewritten in place, else a line per tenth.
      let progress = ProgressReporter(phaseDelay: 0)
      let samples = try sampleTeacher(denoiser, options: options) { progress.phase("sampling", done: $0, total: $1) }
      let (sampler, steps) = (sampling.sampler.rawValue, sampling.steps)
      var metadata = ["teacher": teacher, "sampler": sampler, "steps": String(steps), "seed": String(seed)]
      if denoiser.classes != nil {
        metadata["guidance"] = String(sampling.guidance)
        metadata["class"] = classLabel.map(String.init) ?? "i mod classes"
      }
      try writeSamples(samples, to: out, metadata: metadata)
      print("wrote \(out): samples \(samples.shape) (\(sampler), \(steps) steps, seed \(seed))")
    }
  }
}
