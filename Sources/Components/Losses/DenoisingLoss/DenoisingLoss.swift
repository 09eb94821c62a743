import DistillCore
import DistillDiffusion
import DistillPipeline

/// The diffusion training loss: noise a data batch at random timesteps and regress the
/// generator's denoiser output on its target (ε, x₀ or v). With it a manifest trains a
/// teacher: the run's `denoiser/` folder then loads as a `folder` teacher.
///
/// A class-conditional denoiser learns at each sample's label, replaced by the null class with
/// probability `labelDropout` per sample, so that it also learns the unconditional model that
/// classifier-free guidance needs (Ho & Salimans 2022); a text-conditional one learns at each
/// row's prompt, replaced by the empty prompt with the same probability.
public final class DenoisingLossTerm: LossTerm {
  let timesteps: Range<Int>
  let labelDropout: Double

  init(timesteps: Range<Int>, labelDropout: Double) {
    self.timesteps = timesteps
    self.labelDropout = labelDropout
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    guard let generator = context.generator as? any DenoiserGenerator else {
      throw DistillError.invalidValue(location: "generator", expected: "a denoiser generator", found: "another kind")
    }
    guard let x0 = try context.batch().samples else {
      throw DistillError.invalidValue(location: "data", expected: "a data source with samples", found: "none")
    }
    let t = context.timesteps(x0.shape[0], in: timesteps)
    var condition = try context.batchCondition()
    if let labels = condition.labels, let null = generator.denoiser.classes?.null, labelDropout > 0 {
      let draws = context.uniform()
      condition.labels = zip(labels, draws).map { $1 < labelDropout ? null : $0 }
    }
    if let embeddings = condition.embeddings, let prompts = generator.denoiser.prompts, labelDropout > 0 {
      condition = Condition(embeddings: prompts.dropping(embeddings, where: context.uniform().map { $0 < labelDropout }))
    }
    return generator.denoiser.denoisingLoss(
      x0: x0, timesteps: t, noise: context.normal(x0.shape), condition: condition)
  }
}

public enum DenoisingLoss: LossComponent {
  public static let id = "denoising"
  public static let summary = "the diffusion training loss on data (trains a denoiser generator as a teacher)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "labelDropout", .number(0...1), default: .number(0.1),
      "for a class- or text-conditional denoiser: the probability per sample of training on the null class (the empty prompt) instead of the label (prompt); classifier-free guidance needs it")
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    guard context.generator is any DenoiserGenerator else {
      throw DistillError.invalidValue(
        location: entry.path, expected: "a \"denoiser\" generator to train", found: "generator \"\(context.generatorType)\"")
    }
    try context.requireData(for: entry)
    return DenoisingLossTerm(timesteps: 0..<context.schedule.trainSteps, labelDropout: entry.double("labelDropout"))
  }
}
