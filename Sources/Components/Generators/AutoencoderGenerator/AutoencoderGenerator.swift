import DistillCore
import DistillNN
import DistillPipeline
import Foundation

/// A KL autoencoder (diffusers' `AutoencoderKL`) trained by the `autoencoder` loss: the first
/// stage of a latent teacher. As a generator it decodes draws of its prior, N(0, I) in the
/// decoder's own latent space, so a run's grids show what the prior decodes to; how well it
/// reconstructs is the loss's `autoencoder/reconstruction` value. A run writes it as a
/// diffusers `vae/` folder.
public final class AutoencoderSampleGenerator: AutoencodingGenerator {
  public let autoencoder: AutoencoderKL
  public let sampleShape: [Int]
  public let noiseShape: [Int]
  public let configJSON: JSONValue
  public var module: Module { autoencoder }

  init(autoencoder: AutoencoderKL, sampleShape: [Int], config: JSONValue) {
    self.autoencoder = autoencoder
    self.sampleShape = sampleShape
    let factor = 1 << (autoencoder.config.blockOutChannels.count - 1)
    noiseShape = [autoencoder.config.latentChannels, sampleShape[1] / factor, sampleShape[2] / factor]
    configJSON = config
  }

  public func sample(_ noise: Tensor, condition: Condition, progress: (_ done: Int, _ total: Int) -> Void) -> Tensor {
    let images = autoencoder.decode(noise)
    progress(1, 1)
    return images
  }
}

public enum AutoencoderGeneratorComponent: GeneratorComponent {
  public static let id = "autoencoder"
  public static let summary = "a KL autoencoder (diffusers AutoencoderKL) for the autoencoder loss: a latent teacher's VAE, written as vae/"
  public static let parameters: [ParameterSpec] = [
    .optional(
      "config", .object,
      "a new autoencoder: diffusers AutoencoderKL config keys (block_out_channels, latent_channels, norm_num_groups, scaling_factor, ...)"
    ),
    .optional("init", .path(mustExist: true), "start from a diffusers vae/ folder instead (config.json + weights)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Generator {
    let autoencoder: AutoencoderKL
    switch (entry.object("config"), entry.optionalPath("init")) {
    case (let config?, nil):
      let location = "\(entry.path).config"
      let decoded = try AutoencoderKLConfig.decode(try JSONEncoder().encode(config), source: location)
      var rng = context.initialisationRNG(for: entry.path)
      autoencoder = AutoencoderKL(config: decoded, using: &rng)
    case (nil, let folder?):
      autoencoder = try AutoencoderKL.load(folder: folder)
      autoencoder.train()
    default:
      throw DistillError.invalidValue(
        location: entry.path, expected: "exactly one of \"config\" (a new autoencoder) and \"init\" (a vae/ folder)",
        found: entry.has("config") ? "both" : "neither")
    }
    let data = try context.requireData(for: entry)
    let config = autoencoder.config
    let factor = 1 << (config.blockOutChannels.count - 1)
    let shape = data.sampleShape
    guard shape.count == 3, shape[0] == config.inChannels, shape[1] % factor == 0, shape[2] % factor == 0 else {
      throw DistillError.invalidValue(
        location: entry.path,
        expected: "data images [\(config.inChannels), H, W] with H and W multiples of \(factor) (the autoencoder's \(config.blockOutChannels.count) levels)",
        found: "data of sample shape \(shape)")
    }
    return AutoencoderSampleGenerator(autoencoder: autoencoder, sampleShape: shape, config: entry.resolvedJSON)
  }
}
