import DistillCore
import DistillDiffusion
import DistillPipeline

/// DMD's fake score: a denoiser trained, beside the generator, with the denoising loss on
/// detached generator samples, so that it tracks the generator's distribution.
public enum TrainedScore: ScoreComponent {
  public static let id = "trained"
  public static let summary = "a denoiser trained on the generator's samples (DMD's fake score), from a copy of the teacher or a new network"
  public static let parameters: [ParameterSpec] =
    trainableDenoiserParameters + [
    .optional("optimizer", .component(.optimizer), "its optimizer (default: the manifest's)"),
    ParameterSpec("updatesPerStep", .integer(1...1000), default: .number(1), "denoising updates per training step"),
    ParameterSpec(
      "timestepRange", .numbers(count: 2), default: .array([.number(0), .number(1)]),
      "the fraction of [0, T) its denoising loss samples timesteps from"),
    ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> ScoreEstimator {
    let (denoiser, module) = try context.makeTrainableDenoiser(entry, reparameterisingEpsilon: true)
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
/// regress the network's raw output on its target (ε, x₀ or v, as it predicts), at the class
/// each sample was generated for.
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
    let t = context.timesteps(x0.shape[0], in: timesteps)
    return denoiser.denoisingLoss(x0: x0, timesteps: t, noise: context.normal(x0.shape), condition: context.condition())
  }
}
