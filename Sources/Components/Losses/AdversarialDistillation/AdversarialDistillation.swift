import DistillCore
import DistillDiffusion
import DistillNN
import DistillPipeline

/// ADD (Sauer et al. 2023): an adversarial loss from trainable heads on a frozen network's
/// encoder features, plus the score-distillation loss, on the generator's samples x̂:
///
///     L = adversarialWeight · L_adv + distillationWeight · c(t)·‖x̂ − x̂_ψ(sg(x̂_t), t)‖²
///
/// - L_adv = −Σ_k mean D_k(F_k(x̂)) (hinge), F_k the feature network's encoder outputs at
///   `featureTimestep`; the heads' update (an auxiliary phase) minimises
///   Σ_k mean max(0, 1 − D_k(F_k(x₀))) + mean max(0, 1 + D_k(F_k(x̂))) + γ·R1 on data x₀.
/// - With `headCondition: "student-step"` and a generator trained one step at a time (noised
///   data, backward simulation) each student step has its own heads, and a row is judged by
///   the heads of the step it was made at (``StepContext/generatorSteps``); a data row by its
///   row's step's.
///   Each step's samples are then held to the data on their own, rather than all steps'
///   samples together (where one step's excess of a mode is paid by the others' lack of it).
/// - x̂_t = α_t·x̂ + σ_t·ε with t ~ U{tmin·T, …, tmax·T}; x̂_ψ is the teacher's x̂₀ there
///   without gradients; c(t) is ``ScoreDistillationWeighting``; ‖·‖² is a mean over a
///   sample's values (`distillationReduction: "mean"`, the default) or their sum (`"sum"`, the
///   paper's squared L2 norm, D times larger for D values per sample).
///
/// Logs `add/sample-mean`, `add/sample-std`, `add/adversarial-loss`, `add/distillation-loss`,
/// their gradients in the samples `add/adversarial-sample-gradient-norm` and
/// `add/distillation-sample-gradient-norm`, `add/generator-logit`; from the heads' update
/// `add/discriminator-loss`, `add/real-logit`, `add/fake-logit` and (γ > 0) `add/r1`.
public final class AdversarialDistillationTerm: LossTerm {
  /// How the squared error of a sample is reduced over its values.
  public enum Reduction: String, CaseIterable, Sendable {
    case mean, sum
  }

  /// What the heads are conditioned on.
  public enum HeadCondition: String, CaseIterable, Sendable {
    /// The student step of each row, when the generator trains its steps one at a time.
    case studentStep = "student-step"
    case none
  }

  let teacher: any Denoiser
  let features: any FeatureTapping
  let featureTimestep: Float
  /// `heads[s][k]`: student step s's head on feature k (one step when not conditioned).
  let heads: [[DiscriminatorHead]]
  let adversarialWeight: Float
  let distillationWeight: Float
  let weighting: ScoreDistillationWeighting
  let timesteps: Range<Int>
  let reduction: Reduction
  let discriminator: AdversarialDiscriminatorPhase

  init(
    teacher: any Denoiser, features: any FeatureTapping, featureTimestep: Float,
    heads: [[DiscriminatorHead]],
    network: TrainedNetwork, adversarialWeight: Float, distillationWeight: Float,
    weighting: ScoreDistillationWeighting, timesteps: Range<Int>, reduction: Reduction = .mean,
    r1Weight: Float,
    r1Sigma: Float, updatesPerStep: Int
  ) {
    self.teacher = teacher
    self.features = features
    self.featureTimestep = featureTimestep
    self.heads = heads
    self.adversarialWeight = adversarialWeight
    self.distillationWeight = distillationWeight
    self.weighting = weighting
    self.timesteps = timesteps
    self.reduction = reduction
    self.discriminator = AdversarialDiscriminatorPhase(
      network: network, updatesPerStep: updatesPerStep, r1Weight: r1Weight, r1Sigma: r1Sigma)
    discriminator.term = self
  }

  public var auxiliaryPhases: [any AuxiliaryPhase] { [discriminator] }

  /// The encoder features of clean samples `x` of `condition` (the feature network sees
  /// `featureTimestep` and each sample's class or prompt).
  func encoderFeatures(_ x: Tensor, _ condition: Condition) -> [Tensor] {
    features.features(x, timesteps: [Float](repeating: featureTimestep, count: x.shape[0]), condition: condition)
      .encoder
  }

  /// Each head's logits on its feature, at each row's student step when the heads are
  /// conditioned on it.
  func logits(_ features: [Tensor], _ context: StepContext) -> [Tensor] {
    features.indices.map { k in logit(k, features[k], context) }
  }

  /// Head k's logits on feature `f`: each row's from its student step's head.
  func logit(_ k: Int, _ f: Tensor, _ context: StepContext) -> Tensor {
    guard heads.count > 1 else { return heads[0][k](f) }
    guard let steps = context.generatorSteps else {
      preconditionFailure("heads per student step on samples without student steps")
    }
    return heads.indices.map { s in
      heads[s][k](f) * Tensor(steps.map { $0 == s ? Float(1) : 0 })
    }.reduce(Tensor(scalar: 0), +)
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    let x = context.generated()
    let clean = x.detached()
    context.log("add/sample-mean", Double(clean.mean().item))
    context.log("add/sample-std", Double(clean.variance().sqrt().item))
    let (adversarial, adversarialNorm) = lossWithSampleGradient(x) { x in
      let fake = logits(encoderFeatures(x, context.condition()), context)
      context.log(
        "add/generator-logit", Double(fake.map { $0.mean().item }.reduce(0, +)) / Double(fake.count)
      )
      return HingeGAN.generatorLoss(fake: fake)
    }
    let n = clean.shape[0]
    let t = context.timesteps(n, in: timesteps)
    let noise = context.normal(clean.shape)
    let target = distillationTarget(
      clean, t: t, noise: noise, schedule: context.schedule, condition: context.condition())
    let (distillation, distillationNorm) = lossWithSampleGradient(x) { x in
      Self.distillationLoss(
        x, target: target, weights: t.map { weighting.weight($0, schedule: context.schedule) },
        reduction: reduction)
    }
    context.log("add/adversarial-loss", Double(adversarial.item))
    context.log("add/distillation-loss", Double(distillation.item))
    context.log("add/adversarial-sample-gradient-norm", adversarialNorm)
    context.log("add/distillation-sample-gradient-norm", distillationNorm)
    return adversarial * adversarialWeight + distillation * distillationWeight
  }

  /// x̂_ψ(x̂_t, t) of the teacher (guided as the entry says, at each sample's class) without
  /// gradients; for NFSD's noise-free steps, x̂_ψ − (σ_t/α_t)·ε.
  func distillationTarget(
    _ x: Tensor, t: [Int], noise: Tensor, schedule: NoiseSchedule, condition: Condition = .none
  ) -> Tensor {
    withoutGradients {
      let xt = schedule.addNoise(x0: x, noise: noise, timesteps: t)
      let target = teacher.x0(xt, timesteps: t.map(Float.init), condition: condition)
      let shift = t.map {
        weighting.isNoiseFree($0, trainSteps: schedule.trainSteps)
          ? schedule.noiseScale($0) / schedule.signalScale($0) : 0
      }
      guard shift.contains(where: { $0 != 0 }) else { return target }
      return target - perSample(shift, like: x) * noise
    }.detached()
  }

  /// `mean_n c_n · mean_values (x − target)²`, or with `sum` the sum over values.
  static func distillationLoss(
    _ x: Tensor, target: Tensor, weights: [Double], reduction: Reduction = .mean
  ) -> Tensor {
    let axes = Array(1..<x.rank)
    let squared = (x - target).square()
    let perSample = reduction == .mean ? squared.mean(axes: axes) : squared.sum(axes: axes)
    return (perSample * Tensor(weights.map(Float.init))).mean()
  }
}

/// The heads' hinge update on detached samples and data, with optional R1 on the data's features.
final class AdversarialDiscriminatorPhase: AuxiliaryPhase {
  let name = "add-discriminator"
  let network: TrainedNetwork
  let updatesPerStep: Int
  let r1Weight: Float
  let r1Sigma: Float
  weak var term: AdversarialDistillationTerm?

  init(network: TrainedNetwork, updatesPerStep: Int, r1Weight: Float, r1Sigma: Float) {
    self.network = network
    self.updatesPerStep = updatesPerStep
    self.r1Weight = r1Weight
    self.r1Sigma = r1Sigma
  }

  func loss(_ context: StepContext) throws -> Tensor {
    let term = term!
    let fakeSamples = context.generated().detached()
    guard let real = try context.batch().samples, real.shape == fakeSamples.shape else {
      throw DistillError.invalidValue(
        location: "data", expected: "data samples of the generator's shape \(fakeSamples.shape)",
        found: (try? context.batch().samples?.shape.description) ?? "none")
    }
    // The feature network is frozen: its features carry no gradient.
    let realCondition = try context.batchCondition()
    let (fakeFeatures, realFeatures) = withoutGradients {
      (
        term.encoderFeatures(fakeSamples, context.condition()).map { $0.detached() },
        term.encoderFeatures(real, realCondition).map { $0.detached() }
      )
    }
    let fake = term.logits(fakeFeatures, context)
    let realLogits = term.logits(realFeatures, context)
    var loss = HingeGAN.discriminatorLoss(fake: fake, real: realLogits)
    context.log("add/discriminator-loss", Double(loss.item))
    context.log(
      "add/fake-logit", Double(fake.map { $0.mean().item }.reduce(0, +)) / Double(fake.count))
    context.log(
      "add/real-logit", Double(realLogits.map { $0.mean().item }.reduce(0, +)) / Double(fake.count))
    if r1Weight > 0 {
      let r1 = realFeatures.indices.map { k in
        HingeGAN.approximateR1(
          { term.logit(k, $0, context) }, features: realFeatures[k],
          direction: context.normal(realFeatures[k].shape), sigma: r1Sigma)
      }.reduce(Tensor(scalar: 0), +)
      context.log("add/r1", Double(r1.item))
      loss = loss + r1 * r1Weight
    }
    return loss
  }
}

public enum AdversarialDistillation: LossComponent {
  public static let id = "adversarial-distillation"
  public static let summary =
    "ADD: hinge adversarial loss from trainable heads on frozen encoder features, plus score distillation weighted by c(t)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "adversarialWeight", .number(0...1e6), default: .number(1), "the adversarial loss's factor"),
    ParameterSpec(
      "distillationWeight", .number(0...1e6), default: .number(2.5),
      "λ, the score-distillation loss's factor (2.5 in ADD, with the sum over values)"),
    .choice(
      "distillationReduction", AdversarialDistillationTerm.Reduction.self, default: .mean,
      "a sample's squared error over its values: mean, or sum (the paper's ‖·‖², D times the mean)"),
    .choice(
      "headCondition", AdversarialDistillationTerm.HeadCondition.self, default: .studentStep,
      "student-step: heads for each student step, each row judged by its step's when the generator trains one step at a time (noised data, backward simulation); none"
    ),
    .choice(
      "weighting", ScoreDistillationWeighting.self, default: .exponential,
      "c(t): exponential α_t, sds α_t·σ_t/2, or nfsd (sds with NFSD's noise-free target below 0.2·T)"
    ),
    ParameterSpec(
      "timestepRange", .numbers(count: 2), default: .array([.number(0.02), .number(0.98)]),
      "the fractions [low, high] of T the distillation timestep is drawn from (both ends included)"),
    ParameterSpec(
      "features", .string, default: .string("teacher"),
      "the feature network: \"teacher\" (its encoder, frozen), or the name of a score in `scores` (a trained score keeps training, so its features move)"
    ),
    .optional(
      "featureClassifier", .path(mustExist: true),
      "instead of `features`: a classifier trained by `pipeline train-classifier` (frozen; its convolution stages), a feature network that is not a diffusion model"
    ),
    ParameterSpec(
      "featureTimestep", .number(0...1e6), default: .number(0),
      "the timestep the feature network sees"),
    ParameterSpec(
      "r1Weight", .number(0...1e6), default: .number(0),
      "γ of the R1 penalty on the data's features (0: off)"),
    ParameterSpec(
      "r1Sigma", .number(1e-6...1e3), default: .number(0.01), "the step of R1's central difference"),
    ParameterSpec(
      "updatesPerStep", .integer(1...1000), default: .number(1),
      "discriminator updates per training step"),
    .optional(
      "optimizer", .component(.optimizer), "the heads' optimizer (default: the manifest's)"),
    teacherGuidanceParameter,
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    let teacher = try context.requireTeacher(for: entry)
    let guided = try context.guidedTeacher(for: entry)
    let name = entry.string("features")
    let features: any FeatureTapping
    let sampleShape: [Int]
    if let path = entry.optionalPath("featureClassifier") {
      let classifier = try TrainedClassifier.load(path: path)
      sampleShape = try context.requireGenerator(for: entry).sampleShape
      try classifier.requireInput(sampleShape, location: "\(entry.path).featureClassifier")
      try context.requireData(for: entry, shape: sampleShape)
      features = classifier.network
    } else {
      let source: any Denoiser
      if name == "teacher" {
        source = teacher
      } else {
        guard let score = context.score(name) else {
          throw DistillError.invalidValue(
            location: "\(entry.path).features",
            expected:
              "\"teacher\" or a score in `scores` (\(context.scores.keys.sorted().joined(separator: ", ")))",
            found: "\"\(name)\"")
        }
        source = score.denoiser
      }
      (features, sampleShape) = try context.requireFeatures(
        of: source, at: "\(entry.path).features",
        expected: "a network that exposes features (mlp, unet2d or a Stable-Diffusion-layout UNet)", for: entry)
    }
    let trainSteps = context.schedule.trainSteps
    let range = try entry.timestepRange("timestepRange", trainSteps: trainSteps)
    let featureTimestep = entry.float("featureTimestep")
    guard featureTimestep <= Float(trainSteps - 1) else {
      throw DistillError.invalidValue(
        location: "\(entry.path).featureTimestep", expected: "a timestep in [0, \(trainSteps - 1)]",
        found: "\(entry.double("featureTimestep"))")
    }
    let shapes = features.featureShapes(sampleShape: sampleShape, timestep: featureTimestep).encoder
    var rng = context.initialisationRNG(for: entry.path)
    let steps = (context.generator as? any TrainingSampleGenerator)?.trainingSteps ?? 1
    let condition: AdversarialDistillationTerm.HeadCondition = entry.choice("headCondition")
    let sets = condition == .studentStep ? steps : 1
    let heads = (0..<sets).map { _ in
      shapes.map { DiscriminatorHead(featureShape: $0, using: &rng) }
    }
    let module = Module()
    for (s, set) in heads.enumerated() {
      for (k, head) in set.enumerated() {
        module.register(sets == 1 ? String(k) : "\(s).\(k)", head)
      }
    }
    let network = try context.addNetwork(
      name: "add-discriminator", module: module, optimizer: entry.component("optimizer"))
    return AdversarialDistillationTerm(
      teacher: guided, features: features, featureTimestep: featureTimestep, heads: heads,
      network: network,
      adversarialWeight: entry.float("adversarialWeight"),
      distillationWeight: entry.float("distillationWeight"),
      weighting: entry.choice("weighting"),
      timesteps: range,
      reduction: entry.choice("distillationReduction"),
      r1Weight: entry.float("r1Weight"), r1Sigma: entry.float("r1Sigma"),
      updatesPerStep: entry.int("updatesPerStep"))
  }
}
