import DistillCore
import DistillDiffusion
import DistillPipeline

/// DMD's fake score: a denoiser trained, beside the generator, with the denoising loss on
/// detached generator samples, so that it tracks the generator's distribution.
public enum TrainedScore: ScoreComponent {
  public static let id = "trained"
  public static let kind = ComponentKind.score
  public static let summary = "a denoiser trained on the generator's samples (DMD's fake score), from a copy of the teacher or a new network"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "init", .string(choices: ["teacher", "new"]), default: .string("teacher"),
      "start from a copy of the teacher, or from a new network described by `network`"),
    .optional("network", .object, "for init \"new\": the network object of denoiser.json"),
    .optional(
      "prediction", .string(choices: Prediction.allCases.map(\.rawValue)),
      "for init \"new\": what the network predicts (default: the schedule's); \"sample\" keeps x̂₀ bounded at high noise"),
    .optional("optimizer", .component(.optimizer), "its optimizer (default: the manifest's)"),
    ParameterSpec("updatesPerStep", .integer(1...1000), default: .number(1), "denoising updates per training step"),
    ParameterSpec(
      "timestepRange", .numbers(count: 2), default: .array([.number(0), .number(1)]),
      "the fraction of [0, T) its denoising loss samples timesteps from"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> ScoreEstimator {
    let denoiser: any SavableDenoiser
    if entry.string("init") == "teacher" {
      guard let teacher = context.teacher as? any SavableDenoiser, teacher.weightsModule != nil else {
        throw DistillError.invalidValue(
          location: "\(entry.path).init",
          expected: "a teacher with a network to copy (for an analytic teacher use init \"new\" with a network)",
          found: context.teacher.map { "\"\($0.summary)\"" } ?? "no teacher")
      }
      denoiser = try DenoiserFolder.copy(of: teacher)
    } else {
      guard let network = entry.object("network") else {
        throw DistillError.invalidValue(
          location: "\(entry.path).network", expected: "a network object for init \"new\"", found: "nothing")
      }
      var rng = context.initialisationRNG(for: entry.path)
      denoiser = try DenoiserFolder.makeDenoiser(
        network: network, schedule: context.schedule, scheduleConfig: context.scheduleConfig,
        prediction: entry.optionalString("prediction").flatMap(Prediction.init(rawValue:)) ?? context.prediction,
        location: "\(entry.path).network", using: &rng)
    }
    guard let module = denoiser.weightsModule else {
      throw DistillError.invalidValue(
        location: "\(entry.path).network.type", expected: "a network with parameters (mlp or unet2d)", found: "none")
    }
    module.train()
    let name = String(entry.path.split(separator: ".").last ?? "score")
    let network = try context.addNetwork(name: "score-\(name)", module: module, optimizer: entry.component("optimizer"))
    let range = entry.numbers("timestepRange")
    let trainSteps = denoiser.schedule.trainSteps
    let low = Int((range[0] * Double(trainSteps)).rounded())
    let high = max(low + 1, min(trainSteps, Int((range[1] * Double(trainSteps)).rounded())))
    let phase = DenoisingPhase(
      name: "score-\(name)", network: network, denoiser: denoiser, updatesPerStep: entry.int("updatesPerStep"),
      timesteps: low..<high)
    return ScoreEstimator(denoiser: denoiser, network: network, phases: [phase])
  }
}

/// The denoising loss on detached generator samples: noise them at a random timestep and
/// regress the network's raw output on its target (ε, x₀ or v, as it predicts).
final class DenoisingPhase: AuxiliaryPhase {
  let name: String
  let network: TrainedNetwork
  let denoiser: any SavableDenoiser
  let updatesPerStep: Int
  let timesteps: Range<Int>

  init(name: String, network: TrainedNetwork, denoiser: any SavableDenoiser, updatesPerStep: Int, timesteps: Range<Int>) {
    self.name = name
    self.network = network
    self.denoiser = denoiser
    self.updatesPerStep = updatesPerStep
    self.timesteps = timesteps
  }

  func loss(_ context: StepContext) throws -> Tensor {
    let x0 = context.generated()
    let n = x0.shape[0]
    let t = context.timesteps(n, in: timesteps)
    let noise = Tensor.normal(x0.shape, using: &context.rng)
    let schedule = denoiser.schedule
    let xt = schedule.addNoise(x0: x0, noise: noise, timesteps: t)
    let output = denoiser(xt, timesteps: t.map(Float.init))
    let target: Tensor
    switch denoiser.prediction {
    case .epsilon: target = noise
    case .sample: target = x0
    case .vPrediction: target = schedule.velocity(x0: x0, noise: noise, timesteps: t)
    }
    return Tensor.mseLoss(output, target)
  }
}
