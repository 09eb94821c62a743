import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillNN
import DistillTestSupport
import Foundation
import Testing

@testable import DistillNN
@testable import DistillPipeline

/// Class labels through denoisers, generators, scores and losses, and classifier-free guidance
/// wherever a teacher is asked (issue 16, items 2–4).
@Suite struct ConditioningTests {
  /// Four modes on a ring, classes alternating: class 0 is the modes on the x axis.
  static func ringMixture(prediction: Prediction = .epsilon) throws -> GaussianMixtureDenoiser {
    try GaussianMixtureDenoiser(
      means: [[2, 0], [0, 2], [-2, 0], [0, -2]], std: 0.25, schedule: .ddpm(), prediction: prediction,
      componentClasses: [0, 1, 0, 1])
  }

  static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).map { Swift.abs($0 - $1) }.max() ?? 0
  }

  @Test func classMixtureIsTheMixtureOfItsComponents() throws {
    let mixture = try Self.ringMixture()
    let classZero = try GaussianMixtureDenoiser(means: [[2, 0], [-2, 0]], std: 0.25, schedule: .ddpm())
    var rng = RandomGenerator(seed: 3)
    let x = Tensor.normal([6, 2], using: &rng)
    let t: [Float] = [10, 200, 500, 700, 900, 999]
    #expect(mixture.classes == ClassConditioning(count: 2, null: 2))
    let conditional = mixture(x, timesteps: t, condition: Condition(labels: [0, 0, 0, 0, 0, 0]))
    #expect(Self.maxDifference(conditional, classZero(x, timesteps: t)) < 1e-5)
    // The null label and no condition are the whole mixture; one row's label changes that row only.
    let whole = mixture(x, timesteps: t)
    let mixed = mixture(x, timesteps: t, condition: Condition(labels: [2, 1, 2, 2, 2, 2]))
    #expect(Self.maxDifference(whole.sliced(axis: 0, 2..<6), mixed.sliced(axis: 0, 2..<6)) == 0)
    #expect(Self.maxDifference(whole.sliced(axis: 0, 1..<2), mixed.sliced(axis: 0, 1..<2)) > 1e-3)
  }

  @Test func guidedOutputIsTheGuidanceFormula() throws {
    let mixture = try Self.ringMixture(prediction: .vPrediction)
    var rng = RandomGenerator(seed: 4)
    let x = Tensor.normal([4, 2], using: &rng)
    let t: [Float] = [100, 400, 800, 990]
    let labels = Condition(labels: [0, 1, 1, 0])
    let u = mixture.x0(x, timesteps: t)
    let c = mixture.x0(x, timesteps: t, condition: labels)
    let guidedDenoiser = GuidedDenoiser(mixture, scale: 2.5)
    let guided = guidedDenoiser.x0(x, timesteps: t, condition: labels)
    #expect(Self.maxDifference(guided, u + (c - u) * 2.5) < 1e-5)
    // Scale 1 is the conditional model itself; unconditional calls pass through.
    #expect(mixture.guided(1) is GaussianMixtureDenoiser && mixture.guided(2) is GuidedDenoiser)
    let passed = guidedDenoiser.callAsFunction(x, timesteps: t, condition: .none)
    #expect(Self.maxDifference(passed, mixture(x, timesteps: t)) == 0)
  }

  /// DDIM-50 samples of the exact class-conditional mixture: at guidance 0 (the unconditional
  /// model) half of the samples of class 0 lie on its modes, at 1 (the exact conditional) all
  /// of them, and stronger guidance keeps them there.
  @Test func guidanceConcentratesSamplesOnTheirClass() throws {
    let mixture = try Self.ringMixture()
    let sampler = DDIMSampler(
      schedule: mixture.schedule, prediction: mixture.prediction, clipSample: false, spacing: .trailing)
    var rng = RandomGenerator(seed: 5)
    let noise = Tensor.normal([1000, 2], using: &rng)
    let condition = Condition(labels: [Int](repeating: 0, count: 1000))
    func onClass(_ scale: Double) -> Double {
      // Scale 0 is the unconditional model: u + 0·(c − u).
      let guided = GuidedDenoiser(mixture, scale: scale)
      let model: DenoisingModel = { x, t in guided.callAsFunction(x, timesteps: t, condition: condition) }
      let samples = try! sampler.sample(model: model, initialNoise: noise, steps: 50)
      let components = mixture.nearestComponent(samples)
      return Double(components.filter { mixture.componentClasses![$0] == 0 }.count) / 1000
    }
    let fractions = [0, 0.5, 1, 3].map(onClass)
    #expect(Swift.abs(fractions[0] - 0.5) < 0.05, "\(fractions)")
    #expect(fractions[1] > fractions[0] + 0.2 && fractions[1] < fractions[2], "\(fractions)")
    #expect(fractions[2] >= 0.99 && fractions[3] >= 0.99, "\(fractions)")
  }

  @Test func conditionalMLPDenoiserTakesLabelsAndSavesThem() throws {
    var rng = RandomGenerator(seed: 6)
    let denoiser = MLPDenoiser(
      config: MLPDenoiserConfig(inputSize: 2, width: 16, depth: 2, classes: 3), using: &rng)
    #expect(denoiser.classes == ClassConditioning(count: 3, null: 3))
    let x = Tensor.normal([3, 2], using: &rng)
    let t: [Float] = [5, 500, 900]
    let zero = denoiser(x, timesteps: t, condition: Condition(labels: [0, 0, 0]))
    let one = denoiser(x, timesteps: t, condition: Condition(labels: [1, 1, 1]))
    #expect(Self.maxDifference(zero, one) > 1e-4)
    #expect(Self.maxDifference(denoiser(x, timesteps: t), denoiser(x, timesteps: t, condition: Condition(labels: [3, 3, 3]))) == 0)
    let folder = try makeTemporaryFolder("conditional-mlp")
    try denoiser.save(folder: folder)
    let loaded = try DenoiserFolder.load(folder: folder)
    #expect(loaded.classes == denoiser.classes)
    #expect(Self.maxDifference(loaded(x, timesteps: t, condition: Condition(labels: [2, 0, 1])), denoiser(x, timesteps: t, condition: Condition(labels: [2, 0, 1]))) == 0)
    // The features see the class too.
    let f0 = denoiser.features(x, timesteps: t, labels: [0, 0, 0]).bottleneck
    let f1 = denoiser.features(x, timesteps: t, labels: [1, 1, 1]).bottleneck
    #expect(Self.maxDifference(f0, f1) > 1e-4)
  }

  @Test func unetNullClassIsTheLastTableRow() throws {
    var rng = RandomGenerator(seed: 8)
    var config = UNet2DConfig(
      sampleSize: 8, inChannels: 1, outChannels: 1, downBlocks: [.down, .down], upBlocks: [.up, .up],
      blockOutChannels: [8, 16], layersPerBlock: 1, normGroups: 4, attentionHeadDimension: nil)
    config.classEmbedding = .table(classes: 11)
    let denoiser = UNetDenoiser(unet: UNet2DModel(config: config, using: &rng), schedule: .ddpm())
    #expect(denoiser.classes == ClassConditioning(count: 11))
    try denoiser.setNullClass(10, location: "teacher.nullClass")
    #expect(denoiser.classes == ClassConditioning(count: 10, null: 10))
    expectDistillError(containing: ["teacher.nullClass", "the last class of num_class_embeds 11 (10)", "3"]) {
      try denoiser.setNullClass(3, location: "teacher.nullClass")
    }
    // The null label is what an unconditional call gives the network.
    let x = Tensor.normal([2, 1, 8, 8], using: &rng)
    let unconditional = denoiser(x, timesteps: [10, 900])
    let null = denoiser(x, timesteps: [10, 900], condition: Condition(labels: [10, 10]))
    #expect(Self.maxDifference(unconditional, null) == 0)
    // Guidance without a null class is refused where it is set.
    denoiser.nullClass = nil
    expectDistillError(containing: ["losses[0].guidance", "no null class", "2"]) {
      _ = try BuildContext.guided(denoiser, scale: 2, location: "losses[0].guidance")
    }
  }

  @Test func projectionHeadAddsTheClassEmbeddingOfThePooledFeatures() throws {
    var rng = RandomGenerator(seed: 9)
    let head = DiscriminatorHead(featureShape: [8, 4, 4], classes: 3, using: &rng)
    var plainRNG = RandomGenerator(seed: 9)
    let plain = DiscriminatorHead(featureShape: [8, 4, 4], using: &plainRNG)
    let features = Tensor.normal([2, 8, 4, 4], using: &rng)
    let pooled = features.mean(axes: [2, 3]).scalars
    let table = head.projection!.weight.value.scalars
    let logits = head(features, labels: [2, 0]).scalars
    let base = plain(features).scalars
    for (i, label) in [2, 0].enumerated() {
      let dot = (0..<8).map { table[label * 8 + $0] * pooled[i * 8 + $0] }.reduce(0, +)
      #expect(Swift.abs(logits[i] - (base[i] + dot)) < 1e-5)
    }
  }
}
