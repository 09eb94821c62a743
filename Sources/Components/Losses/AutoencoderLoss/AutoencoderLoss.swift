import DistillCore
import DistillNN
import DistillPipeline

/// The loss of a KL autoencoder (Rombach et al. 2022, §3 and appendix G, without the
/// patch discriminator): encode a data batch, decode a draw of the posterior
/// z = μ + σ·ε, and minimise
///
///     mean((x̂ − x)²) + kl · mean_latents(½(μ² + σ² − 1 − log σ²)) [+ lpips · mean(LPIPS(x̂, x))]
///
/// with both the squared error and the KL divergence as means over their values (per pixel,
/// per latent value). A small `kl` keeps the latents close to the posterior means, as
/// Stable Diffusion's autoencoder; the latent teacher then reads them scaled by the
/// config's `scaling_factor`. Logs `autoencoder/reconstruction`, `autoencoder/kl` and the
/// posterior means' standard deviation `autoencoder/latent-std` (1/that is the scaling factor
/// that gives unit-variance latents).
public final class AutoencoderLossTerm: LossTerm {
  let autoencoder: AutoencoderKL
  let klWeight: Float
  let lpipsWeight: Float
  let lpips: LPIPS?

  init(autoencoder: AutoencoderKL, klWeight: Float, lpipsWeight: Float, lpips: LPIPS?) {
    self.autoencoder = autoencoder
    self.klWeight = klWeight
    self.lpipsWeight = lpipsWeight
    self.lpips = lpips
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    guard let x = try context.batch().samples else {
      throw DistillError.invalidValue(location: "data", expected: "a data source with samples", found: "none")
    }
    let (mean, logVariance) = autoencoder.encode(x)
    let z = mean + (logVariance * 0.5).exp() * context.normal(mean.shape)
    let reconstruction = autoencoder.decode(z)
    let squaredError = (reconstruction - x).square().mean()
    let kl = ((mean.square() + logVariance.exp() - logVariance - 1) * 0.5).mean()
    context.log("autoencoder/reconstruction", Double(squaredError.item))
    context.log("autoencoder/kl", Double(kl.item))
    context.log("autoencoder/latent-std", Double(mean.detached().variance().sqrt().item))
    var total = squaredError + kl * klWeight
    if let lpips {
      let perceptual = lpips(reconstruction, x).mean()
      context.log("autoencoder/lpips", Double(perceptual.item))
      total = total + perceptual * lpipsWeight
    }
    return total
  }
}

public enum AutoencoderLossComponent: LossComponent {
  public static let id = "autoencoder"
  public static let summary = "trains an autoencoder generator on data: reconstruction + KL (+ LPIPS), a latent teacher's VAE"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "kl", .number(0...1e6), default: .number(1e-6),
      "weight of the KL divergence to N(0, I) (a mean over latent values, like the squared error's over pixels)"),
    ParameterSpec("lpipsWeight", .number(0...1e6), default: .number(1), "weight of LPIPS when the lpips object is given"),
    LPIPSOptions.spec("an LPIPS term between reconstructions and data"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    let generator = try context.requireGenerator(
      as: (any AutoencodingGenerator).self, "an \"autoencoder\" generator to train", for: entry)
    let lpips = try LPIPSOptions.load(entry, context, imageShape: generator.sampleShape)
    return AutoencoderLossTerm(
      autoencoder: generator.autoencoder, klWeight: entry.float("kl"), lpipsWeight: entry.float("lpipsWeight"), lpips: lpips)
  }
}
