import DistillCore
import DistillDiffusion
import DistillNN
import DistillPipeline

/// The non-saturating GAN losses on logits ℓ (DMD2's `edm_guidance.py`, L192–219).
public enum NonSaturatingGAN {
  /// `mean softplus(−ℓ_fake)`: the generator's loss.
  public static func generatorLoss(fake: Tensor) -> Tensor { (-fake).softplus().mean() }
  /// `mean softplus(ℓ_fake) + mean softplus(−ℓ_real)`: the discriminator's loss.
  public static func discriminatorLoss(fake: Tensor, real: Tensor) -> Tensor {
    fake.softplus().mean() + (-real).softplus().mean()
  }
}

/// DMD2's GAN loss (§4.3): a classifier head on the fake score network's bottleneck reads
/// samples noised at t ~ U{tmin·T, …, tmax·T}. The generator's term is the non-saturating
/// `softplus(−D(x_t))` on its samples; the discriminator's, `softplus(D(fake_t)) +
/// softplus(−D(real_t))` on detached samples and data noised independently, joins the fake
/// score's update (weighted by `discriminatorWeight`), so the head and the fake network's
/// encoder are trained by it in the same optimizer steps as the denoising loss.
///
/// For a class-conditional generator the fake score's features are read at each sample's class
/// (data at its label) and the head is a projection discriminator on those classes.
///
/// Logs `gan/sample-mean`, `gan/sample-std` (the samples the term sees),
/// `gan/sample-gradient-norm` (‖∂loss/∂x‖), `gan/generator-logit`, and from the
/// discriminator `gan/discriminator-loss`, `gan/real-logit`, `gan/fake-logit`.
public final class DMD2GANTerm: LossTerm {
  let features: any FeatureTapping
  let head: DiscriminatorHead
  let headNetwork: TrainedNetwork
  let timesteps: Range<Int>
  let discriminatorWeight: Float

  init(
    features: any FeatureTapping, head: DiscriminatorHead, headNetwork: TrainedNetwork,
    timesteps: Range<Int>,
    discriminatorWeight: Float
  ) {
    self.features = features
    self.head = head
    self.headNetwork = headNetwork
    self.timesteps = timesteps
    self.discriminatorWeight = discriminatorWeight
  }

  /// The head's logits for clean samples `x` of `condition` noised with `noise` at `t`.
  func logits(_ x: Tensor, noise: Tensor, t: [Int], schedule: NoiseSchedule, condition: Condition) -> Tensor {
    let xt = schedule.addNoise(x0: x, noise: noise, timesteps: t)
    return head(
      features.features(xt, timesteps: t.map(Float.init), condition: condition).bottleneck, labels: condition.labels)
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    let x = context.generated()
    context.log("gan/sample-mean", Double(x.detached().mean().item))
    context.log("gan/sample-std", Double(x.detached().variance().sqrt().item))
    let t = context.timesteps(x.shape[0], in: timesteps)
    let noise = context.normal(x.shape)
    let (loss, norm) = lossWithSampleGradient(x) { x in
      let fake = logits(x, noise: noise, t: t, schedule: context.schedule, condition: context.condition())
      context.log("gan/generator-logit", Double(fake.mean().item))
      return NonSaturatingGAN.generatorLoss(fake: fake)
    }
    context.log("gan/sample-gradient-norm", norm)
    return loss
  }

  // MARK: The discriminator, joined to the fake score's update

  public var networks: [TrainedNetwork] { [headNetwork] }

  public func loss(discriminator context: StepContext) throws -> Tensor {
    let fakeSamples = context.generated().detached()
    guard let real = try context.batch().samples, real.shape == fakeSamples.shape else {
      throw DistillError.invalidValue(
        location: "data", expected: "data samples of the generator's shape \(fakeSamples.shape)",
        found: (try? context.batch().samples?.shape.description) ?? "none")
    }
    let n = fakeSamples.shape[0]
    let (fakeT, realT) = (context.timesteps(n, in: timesteps), context.timesteps(n, in: timesteps))
    let (fakeNoise, realNoise) = (context.normal(fakeSamples.shape), context.normal(real.shape))
    let fake = logits(fakeSamples, noise: fakeNoise, t: fakeT, schedule: context.schedule, condition: context.condition())
    let realLogits = logits(
      real, noise: realNoise, t: realT, schedule: context.schedule, condition: try context.batchCondition())
    let loss = NonSaturatingGAN.discriminatorLoss(fake: fake, real: realLogits)
    context.log("gan/discriminator-loss", Double(loss.item))
    context.log("gan/fake-logit", Double(fake.mean().item))
    context.log("gan/real-logit", Double(realLogits.mean().item))
    return loss * discriminatorWeight
  }
}

/// The joined discriminator loss as its own object (a term is one of each protocol's `loss`).
final class DMD2Discriminator: JoinedLoss {
  let term: DMD2GANTerm
  init(_ term: DMD2GANTerm) { self.term = term }
  var networks: [TrainedNetwork] { term.networks }
  func loss(_ context: StepContext) throws -> Tensor { try term.loss(discriminator: context) }
}

public enum DMD2GAN: LossComponent {
  public static let id = "dmd2-gan"
  public static let summary =
    "DMD2's GAN loss: a classifier head on the fake score's bottleneck, non-saturating, on noised data and samples"
  /// DMD2's gen_cls_loss_weight for ImageNet.
  public static let defaultWeight = 3e-3
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "fake", .reference(section: "scores"), default: .string("fake"),
      "the trained score whose network's encoder feeds the head, and whose update the discriminator loss joins"
    ),
    ParameterSpec(
      "discriminatorWeight", .number(0...1e6), default: .number(1e-2),
      "the discriminator loss's weight in the fake score's update (DMD2's guidance_cls_loss_weight)"
    ),
    ParameterSpec(
      "timestepRange", .numbers(count: 2), default: .array([.number(0), .number(1)]),
      "the fractions [low, high] of T the noise levels of data and samples are drawn from (both ends included)"
    ),
    .optional(
      "optimizer", .component(.optimizer),
      "the head's optimizer (default: the fake score's, else the manifest's)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    let fakeName = entry.string("fake")
    guard let fake = context.score(fakeName), let network = fake.network, !fake.phases.isEmpty
    else {
      throw DistillError.invalidValue(
        location: "\(entry.path).fake",
        expected: "a trained score (its network is the discriminator's encoder)",
        found: "\"\(fakeName)\"")
    }
    let (features, sampleShape) = try context.requireFeatures(
      of: fake.denoiser, at: "\(entry.path).fake",
      expected: "a trained score whose network exposes features (mlp, unet2d or a Stable-Diffusion-layout UNet)", for: entry)
    let range = try entry.timestepRange("timestepRange", trainSteps: context.schedule.trainSteps)
    let featureShape = features.featureShapes(sampleShape: sampleShape, timestep: 0).bottleneck
    var rng = context.initialisationRNG(for: entry.path)
    let head = DiscriminatorHead(featureShape: featureShape, classes: context.generator?.classes?.count, using: &rng)
    let headNetwork = try context.addNetwork(
      name: "\(network.name)-gan-head", module: head, optimizer: entry.component("optimizer") ?? network.optimizerEntry)
    let term = DMD2GANTerm(
      features: features, head: head, headNetwork: headNetwork, timesteps: range,
      discriminatorWeight: entry.float("discriminatorWeight"))
    fake.join(DMD2Discriminator(term))
    return term
  }
}
