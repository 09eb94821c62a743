import ArgumentParser
import DistillCore
import DistillPipeline
import Foundation

struct SampleCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sample",
    abstract: "Write samples of a run's trained generator as a PNG grid or safetensors.",
    discussion: """
      Rebuilds the generator from the run folder's manifest.json and loads generator.safetensors (or, with \
      --checkpoint, a checkpoint's weights). A .png output is a grid (image samples, or a scatter plot of 2-D \
      samples); a .safetensors output holds the key "samples" of shape [N, ...]. Sample i of a class-conditional \
      run is of class i mod C; of a text-to-image run, of prompt i mod P of its captions, decoded through the \
      teacher's VAE to images in [-1, 1].
      """)

  @Option(name: .customLong("run"), help: "The run folder.")
  var runFolder: String

  @Option(help: "How many samples.")
  var count: Int

  @Option(help: "The noise seed.")
  var seed: UInt64 = 0

  @Option(help: "Use the weights of this checkpoint step instead of generator.safetensors.")
  var checkpoint: Int?

  @Option(help: "The output file: .png or .safetensors.")
  var out: String

  func validate() throws {
    guard count >= 1 else { throw ValidationError("--count must be at least 1") }
    let ext = (out as NSString).pathExtension.lowercased()
    guard ext == "png" || ext == "safetensors" else {
      throw ValidationError("--out must end in .png or .safetensors, got \"\(out)\"")
    }
  }

  func run() throws {
    try runReportingErrors {
      let folder = RunFolder(path: runFolder)
      guard FileManager.default.fileExists(atPath: folder.manifestPath) else {
        throw DistillError.io(path: folder.manifestPath, reason: "not a run folder (no manifest.json)")
      }
      let registry = RegistryHolder.shared.registry
      let manifest = try Manifest.load(path: folder.manifestPath, registry: registry)
      let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
      let module = pipeline.generator.module
      if let checkpoint {
        try module.load(tensors(folder.checkpoints.read(step: checkpoint), under: "network.generator"), strict: true)
      } else {
        let file = try SafetensorsFile.read(contentsOf: folder.generatorWeightsPath)
        do {
          try module.load(file.tensors(), strict: true)
        } catch let error as DistillError {
          throw DistillError.malformed(path: folder.generatorWeightsPath, detail: error.description)
        }
      }
      module.eval()
      // As evaluation asks: row i of class i mod C, or of prompt i mod P; a latent run's images.
      let samples = pipeline.images(
        RunRecorder.generate(pipeline.generator, count: count, seed: seed, batchSize: 256, data: pipeline.data))
      try writeSamples(samples, to: out, metadata: ["run": folder.path, "seed": String(seed)])
      print("wrote \(count) samples to \(out)")
    }
  }
}
