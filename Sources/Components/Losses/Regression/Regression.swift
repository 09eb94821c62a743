import DistillCore
import DistillDiffusion
import DistillNN
import DistillPipeline

/// Regression on precomputed pairs (Luhman & Luhman 2021's knowledge distillation, DMD's
/// regression loss): the generator's output for a pair's noise (and class, for class-conditional
/// pairs, or prompt, for text-to-image pairs) against the teacher's sample for that noise, by
/// mean squared error, mean absolute error, or LPIPS (with its weights; the pairs' samples must
/// be images in [-1, 1], checked at every step, or a latent teacher's latents, which LPIPS sees
/// decoded: the student's through the VAE's decoder with gradients, the pair's without).
///
/// Logs `reg/distance` (mean per-sample ‖G(z) − target‖) and `reg/sample-gradient-norm`.
///
/// The term reads its own pairs folder with its own cursor (checkpointed under its entry's
/// path), independent of the manifest's `data`.
public final class RegressionTerm: LossTerm {
  public enum Distance: String, CaseIterable, Sendable {
    case l2, l1, lpips
  }

  public let cursor: PairsCursor
  public let distance: Distance
  /// The LPIPS network, for the `lpips` distance.
  let lpips: LPIPS?
  /// Where errors point (`losses[i]`).
  let location: String
  /// The latent teacher whose decoder turns latents into the images LPIPS compares.
  let decoder: (any LatentDenoiser)?

  init(
    cursor: PairsCursor, distance: Distance, lpips: LPIPS? = nil, decoder: (any LatentDenoiser)? = nil,
    location: String = "regression"
  ) {
    precondition((distance == .lpips) == (lpips != nil), "the lpips distance needs its network")
    self.cursor = cursor
    self.distance = distance
    self.lpips = lpips
    self.location = location
    self.decoder = decoder
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    let pairs = cursor.next(rows: context.rows, of: context.globalBatchSize)
    let (noise, target) = (pairs.inputs!, pairs.samples!)
    var condition = Condition(labels: pairs.labels)
    condition.embeddings = pairs.embeddings
    let output = context.generator(noise, condition: condition)
    if distance == .lpips, decoder == nil {
      try LPIPSOptions.checkedTarget(
        target, what: "the pairs' samples (precompute them with clipped samples for images)", location: "\(location).pairs")
    }
    let axes = Array(1..<output.rank)
    let difference = (output - target).detached()
    context.log("reg/distance", Double(difference.square().sum(axes: axes).sqrt().mean().item))
    let targetImage = distance == .lpips ? decoder.map { d in withoutGradients { d.decode(target) }.detached() } : nil
    let (loss, gradientNorm) = try lossWithSampleGradient(output) { x in
      switch distance {
      case .l2: return Tensor.mseLoss(x, target)
      case .l1: return (x - target).abs().mean()
      case .lpips:
        guard let decoder, let targetImage else { return lpips!(x, target).mean() }
        return lpips!(decoder.decode(x), targetImage).mean()
      }
    }
    context.log("reg/sample-gradient-norm", gradientNorm)
    return loss
  }
}

public enum Regression: LossComponent {
  public static let id = "regression"
  public static let summary = "regress generator(noise) on the teacher's samples for the same noise, from a pairs folder"
  public static let parameters: [ParameterSpec] = [
    .choice(
      "distance", RegressionTerm.Distance.self, default: .l2,
      "mean squared error (l2), mean absolute error (l1), or LPIPS (lpips, with the lpips object)"),
    ParameterSpec("pairs", .path(mustExist: true), "the pairs folder written by `pipeline precompute`"),
    ParameterSpec("shuffle", .bool, default: .bool(true), "visit the pairs in a new permutation each epoch"),
    LPIPSOptions.spec("the LPIPS network of the lpips distance"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    let distance: RegressionTerm.Distance = entry.choice("distance")
    let generator = try context.requireGenerator(for: entry)
    let store = try PairsStore(
      folder: entry.path("pairs"), expectedShape: generator.sampleShape,
      location: "the generator (\(context.generatorType))")
    guard generator.noiseShape == store.sampleShape else {
      throw DistillError.invalidValue(
        location: "\(entry.path).pairs",
        expected: "a generator whose noise has the pairs' shape \(store.sampleShape)",
        found: "noise of shape \(generator.noiseShape) (generator \"\(context.generatorType)\")")
    }
    guard (store.index.prompts != nil) == (generator.prompts != nil) else {
      throw DistillError.invalidValue(
        location: "\(entry.path).pairs",
        expected: generator.prompts != nil
          ? "pairs with prompts for the text-conditional generator (precomputed with a captions data source)"
          : "pairs without prompts for the generator, which takes none",
        found: store.index.prompts.map { "pairs of \($0.count) prompts" } ?? "pairs without prompts")
    }
    if let prompts = generator.prompts, let embeddings = store.promptEmbeddings,
      Array(embeddings.shape.dropFirst()) != [prompts.length, prompts.width]
    {
      throw DistillError.invalidValue(
        location: "\(entry.path).pairs",
        expected: "prompt embeddings of the generator's [\(prompts.length), \(prompts.width)]",
        found: "\(Array(embeddings.shape.dropFirst())) in \(PairsIndex.promptEmbeddingsFileName)")
    }
    guard store.index.classes == generator.classes?.count else {
      let classes = { (count: Int?) in count.map { "\($0) classes" } ?? "no classes" }
      throw DistillError.invalidValue(
        location: "\(entry.path).pairs",
        expected: "pairs of the generator's classes (\(classes(generator.classes?.count)))",
        found: "pairs with \(classes(store.index.classes))")
    }
    let cursor = PairsCursor(
      store: store, shuffle: entry.bool("shuffle"), seed: context.initialisationRNG(for: entry.path))
    // A latent generator's samples are compared as the teacher's decoder shows them.
    let decoder = LPIPSOptions.decoder(context, for: generator)
    let lpips = try LPIPSOptions.load(
      entry, context, distance: distance.rawValue, imageShape: decoder?.imageShape ?? generator.sampleShape)
    context.addCheckpointState(prefix: entry.path, cursor)
    return RegressionTerm(
      cursor: cursor, distance: distance, lpips: lpips, decoder: distance == .lpips ? decoder : nil,
      location: entry.path)
  }
}
