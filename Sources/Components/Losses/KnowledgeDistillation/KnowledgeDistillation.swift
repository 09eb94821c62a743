import DistillCore
import DistillDiffusion
import DistillNN
import DistillPipeline

/// Knowledge distillation (Luhman & Luhman 2021, "Denoising Student"): regress the
/// generator's sample for noise z on the teacher's deterministic DDIM output F(z) for the
/// same z, `mean d(G(z), F(z))` with d the squared (l2) or absolute (l1) difference, or the
/// LPIPS distance of the two images (with its weights; the teacher's outputs are compared as
/// they come, unclipped; a latent teacher's latents, both, as its decoder shows them).
///
/// The teacher's ODE runs without gradients (`steps` DDIM steps, eta 0, no clipping). With
/// `pairs` unset every step draws fresh noise (the generator's own batch); with `pairs: N` a
/// fixed set of N (z, F(z)) pairs is computed once when the pipeline is built, as precomputed
/// pairs would be, and each step regresses a random batch of them. For a class-conditional
/// student the teacher runs at each sample's class (pair `i` of class `i mod classes`; for a
/// text-conditional one, pair `i` of the captions' prompt `i mod prompts`) with the entry's
/// `guidance`, which the student thereby learns.
/// Logs `kd/distance` (mean per-sample ‖G(z) − F(z)‖) and `kd/sample-gradient-norm`.
public final class KnowledgeDistillationTerm: LossTerm {
  public enum Distance: String, CaseIterable, Sendable { case l2, l1, lpips }

  let teacher: any Denoiser
  let sampler: DDIMSampler
  let steps: Int
  let distance: Distance
  /// The LPIPS network, for the `lpips` distance.
  let lpips: LPIPS?
  /// The latent teacher whose decoder turns latents into the images LPIPS compares.
  let decoder: (any LatentDenoiser)?
  /// The fixed pairs, when `pairs` was given.
  let pairs: (noise: Tensor, target: Tensor, condition: Condition)?

  /// - Parameter promptEmbeddings: the captions' prompts `[P, L, D]` of fixed pairs for a
  ///   text-conditional student (pair `i` of prompt `i mod P`).
  init(
    teacher: any Denoiser, sampler: DDIMSampler, steps: Int, distance: Distance, lpips: LPIPS? = nil,
    decoder: (any LatentDenoiser)? = nil, pairCount: Int?, promptEmbeddings: Tensor? = nil,
    rng: inout RandomGenerator
  ) {
    precondition((distance == .lpips) == (lpips != nil), "the lpips distance needs its network")
    self.teacher = teacher
    self.sampler = sampler
    self.steps = steps
    self.distance = distance
    self.lpips = lpips
    self.decoder = decoder
    if let pairCount, let shape = teacher.sampleShape {
      let noise = Tensor.normal([pairCount] + shape, using: &rng)
      var condition = Condition(labels: teacher.classes.map { classes in (0..<pairCount).map { $0 % classes.count } })
      condition.embeddings = promptEmbeddings.map { p in p.gatheringRows((0..<pairCount).map { $0 % p.shape[0] }) }
      pairs = (noise, Self.teacherOutput(teacher, sampler: sampler, steps: steps, noise: noise, condition: condition), condition)
    } else {
      pairs = nil
    }
  }

  /// The teacher's deterministic DDIM output for `noise` and `condition`, without gradients.
  public static func teacherOutput(
    _ teacher: any Denoiser, sampler: DDIMSampler, steps: Int, noise: Tensor, condition: Condition = .none
  ) -> Tensor {
    withoutGradients {
      sampler.sample(model: { x, t in teacher(x, timesteps: t, condition: condition) }, initialNoise: noise, steps: steps)
    }.detached()
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    let x: Tensor
    let target: Tensor
    if let pairs {
      let indices = context.integers(in: 0..<pairs.noise.shape[0])
      let noise = pairs.noise.gatheringRows(indices)
      var condition = Condition(labels: pairs.condition.labels.map { labels in indices.map { labels[$0] } })
      condition.embeddings = pairs.condition.embeddings?.gatheringRows(indices)
      x = context.generator(noise.reshaped([indices.count] + context.generator.noiseShape), condition: condition)
      target = pairs.target.gatheringRows(indices)
    } else {
      x = context.generated()
      target = Self.teacherOutput(
        teacher, sampler: sampler, steps: steps, noise: context.noise().reshaped([x.shape[0]] + Array(x.shape.dropFirst())),
        condition: context.condition())
    }
    let difference = x.detached() - target
    let axes = Array(1..<x.rank)
    let n = Double(x.shape[0])
    context.log("kd/distance", Double(difference.square().sum(axes: axes).sqrt().sum().item) / n)
    switch distance {
    case .l2:
      context.log("kd/sample-gradient-norm", 2 * Double(difference.square().sum().sqrt().item) / Double(x.count))
      return Tensor.mseLoss(x, target)
    case .l1:
      let nonzero = difference.scalars.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
      context.log("kd/sample-gradient-norm", Double(nonzero).squareRoot() / Double(x.count))
      return Tensor.l1Loss(x, target)
    case .lpips:
      guard let decoder else { return lpips!(x, target).mean() }
      return lpips!(decoder.decode(x), withoutGradients { decoder.decode(target) }.detached()).mean()
    }
  }
}

public enum KnowledgeDistillation: LossComponent {
  public static let id = "knowledge-distillation"
  public static let summary = "regress G(z) on the teacher's deterministic DDIM output for the same noise z (Luhman & Luhman 2021)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("steps", .integer(1...10_000), default: .number(50), "the teacher's DDIM steps"),
    .choice("spacing", TimestepSpacing.self, default: .trailing,
      "the DDIM timestep spacing (trailing starts at T−1, where the noise is pure)"),
    .choice("distance", KnowledgeDistillationTerm.Distance.self, default: .l2,
      "squared (l2) or absolute (l1) difference, averaged over values, or LPIPS (lpips, with the lpips object)"),
    LPIPSOptions.spec("the LPIPS network of the lpips distance"),
    .optional(
      "pairs", .integer(1...10_000_000),
      "regress a fixed set of this many (noise, teacher output) pairs computed once at start (default: fresh noise every step)"),
    teacherGuidanceParameter,
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    let (_, generator) = try context.requireGeneratorOnTeacherNoise(for: entry)
    let teacher = try context.guidedTeacher(for: entry)
    let steps = entry.int("steps")
    guard steps <= teacher.schedule.trainSteps else {
      throw DistillError.invalidValue(
        location: "\(entry.path).steps", expected: "at most the schedule's \(teacher.schedule.trainSteps) steps",
        found: String(steps))
    }
    // A latent generator's samples are compared as the teacher's decoder shows them.
    let decoder = LPIPSOptions.decoder(context, for: generator)
    let lpips = try LPIPSOptions.load(
      entry, context, distance: entry.string("distance"), imageShape: decoder?.imageShape ?? generator.sampleShape)
    let sampler = DDIMSampler(
      schedule: teacher.schedule, prediction: teacher.prediction, clipSample: false,
      spacing: entry.choice("spacing"))
    var rng = context.initialisationRNG(for: entry.path)
    return KnowledgeDistillationTerm(
      teacher: teacher, sampler: sampler, steps: steps,
      distance: entry.choice("distance"), lpips: lpips, decoder: lpips == nil ? nil : decoder,
      pairCount: entry.optionalInt("pairs"),
      promptEmbeddings: generator.prompts == nil ? nil : (context.data as? any PromptDataSource)?.promptEmbeddings,
      rng: &rng)
  }
}
