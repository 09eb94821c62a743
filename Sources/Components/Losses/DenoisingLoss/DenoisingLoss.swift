import DistillCore
import DistillDiffusion
import DistillPipeline

/// The diffusion training loss: noise a data batch at random timesteps and regress the
/// generator's denoiser output on its target (ε, x₀ or v). With it a manifest trains a
/// teacher: the run's `denoiser/` folder then loads as a `folder` teacher.
public final class DenoisingLossTerm: LossTerm {
  let timesteps: Range<Int>

  init(timesteps: Range<Int>) { self.timesteps = timesteps }

  public func loss(_ context: StepContext) throws -> Tensor {
    guard let generator = context.generator as? any DenoiserGenerator else {
      throw DistillError.invalidValue(location: "generator", expected: "a denoiser generator", found: "another kind")
    }
    guard let x0 = try context.batch().samples else {
      throw DistillError.invalidValue(location: "data", expected: "a data source with samples", found: "none")
    }
    let t = context.timesteps(x0.shape[0], in: timesteps)
    return generator.denoiser.denoisingLoss(x0: x0, timesteps: t, noise: context.normal(x0.shape))
  }
}

public enum DenoisingLoss: LossComponent {
  public static let id = "denoising"
  public static let summary = "the diffusion training loss on data (trains a denoiser generator as a teacher)"
  public static let parameters: [ParameterSpec] = []

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    guard context.generator is any DenoiserGenerator else {
      throw DistillError.invalidValue(
        location: entry.path, expected: "a \"denoiser\" generator to train", found: "generator \"\(context.generatorType)\"")
    }
    try context.requireData(for: entry)
    return DenoisingLossTerm(timesteps: 0..<context.schedule.trainSteps)
  }
}
