import DistillCore
import DistillDiffusion
import DistillNN
import Foundation
import Testing

/// `scripts/text-to-image-chain.sh` end to end with a few steps per stage, on the Fashion-MNIST
/// files Debian's dataset-fashion-mnist installs (scripts/setup.sh installs it; CI has it):
/// classifier, autoencoder, text-conditional latent teacher, (noise, latent, prompt) triples,
/// one-step student, and the table with the per-prompt figures.
@Suite(.serialized) struct TextToImageChainTests {
  static let installed = FileManager.default.fileExists(
    atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

  @Test(.enabled(if: installed)) func runsWithAFewStepsPerStage() throws {
    let out = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: out) }
    let result = try runChainScript(
      "text-to-image-chain.sh", into: out,
      settings: [
        "SET": "training.steps=2 training.batchSize=4 evaluation.every=2 evaluation.samples=20 evaluation.gridSize=10",
        "TEACHER_SET": "generator.steps=2 data.count=64", "STUDENT_SET": "data.count=40", "PAIRS": "8",
      ])
    #expect(result.status == 0, "\(result.error)")
    for file in [
      "classifier/classifier.json", "vae/vae/config.json", "teacher/denoiser/model_index.json",
      "teacher/denoiser/unet/diffusion_pytorch_model.safetensors", "pairs/pairs.json",
      "pairs/prompt-embeddings.safetensors", "student/denoiser/unet/config.json",
    ] {
      #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
    }
    // The autoencoder's scaling factor was set from its latents' spread.
    let vae = try AutoencoderKL.load(folder: out + "/vae/vae")
    #expect(vae.config.scalingFactor != 1 && vae.config.scalingFactor > 0, "\(vae.config.scalingFactor)")
    // The teacher's denoiser/ loads back as a Stable-Diffusion-layout teacher of 7x7x4 latents
    // with the trained autoencoder and prompts from sd-tiny's text encoder.
    let teacher = try TextToImageDenoiser(folder: out + "/teacher/denoiser")
    #expect(teacher.sampleShape == [4, 7, 7] && teacher.prediction == .vPrediction, "\(teacher.summary)")
    #expect(teacher.pipeline.vae.config.inChannels == 1 && teacher.promptConditioning.width == 32)
    // Both runs report the overall and the per-prompt figures.
    for key in ["FD_classifier", "class-accuracy", "class-accuracy/class-9", "FD_classifier/class-0"] {
      let line = result.output.split(separator: "\n").first { $0.hasPrefix(key + " ") }
      let values = line.map { $0.split(separator: " ").dropFirst().compactMap { Double($0) } } ?? []
      #expect(values.count == 2 && values.allSatisfy(\.isFinite), "\(key): \(result.output)")
    }
  }
}
