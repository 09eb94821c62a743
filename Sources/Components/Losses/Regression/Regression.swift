import DistillCore
import DistillDiffusion
import DistillPipeline

/// Regression on precomputed pairs (Luhman & Luhman 2021's knowledge distillation, DMD's
/// regression loss): the generator's output for a pair's noise against the teacher's sample
/// for that noise, by mean squared error or mean absolute error.
///
/// The term reads its own pairs folder with its own cursor (checkpointed under its entry's
/// path), independent of the manifest's `data`.
public final class RegressionTerm: LossTerm {
  public enum Distance: String, CaseIterable, Sendable {
    case l2, l1
  }

  public let cursor: PairsCursor
  public let distance: Distance

  init(cursor: PairsCursor, distance: Distance) {
    self.cursor = cursor
    self.distance = distance
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    let (noise, target) = cursor.next(rows: context.rows, of: context.globalBatchSize)
    let output = context.generator(noise)
    switch distance {
    case .l2: return Tensor.mseLoss(output, target)
    case .l1: return (output - target).abs().mean()
    }
  }
}

public enum Regression: LossComponent {
  public static let id = "regression"
  public static let kind = ComponentKind.loss
  public static let summary = "regress generator(noise) on the teacher's samples for the same noise, from a pairs folder"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("weight", .number(0...1e6), default: .number(1), "the term's weight"),
    ParameterSpec(
      "distance", .string(choices: ["l2", "l1", "lpips"]), default: .string("l2"),
      "mean squared error (l2), mean absolute error (l1), or LPIPS (needs its weights: docs/lpips.md)"),
    ParameterSpec("pairs", .path(mustExist: true), "the pairs folder written by `pipeline precompute`"),
    ParameterSpec("shuffle", .bool, default: .bool(true), "visit the pairs in a new permutation each epoch"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    guard let distance = RegressionTerm.Distance(rawValue: entry.string("distance")) else {
      throw DistillError.invalidValue(
        location: "\(entry.path).distance", expected: "\"l2\" or \"l1\" in this build",
        found: "\"\(entry.string("distance"))\": LPIPS weights are needed: see docs/lpips.md")
    }
    guard let generator = context.generator else {
      throw DistillError.invalidValue(location: entry.path, expected: "a generator", found: "none")
    }
    let store = try PairsStore(
      folder: entry.path("pairs"), expectedShape: generator.sampleShape,
      location: "the generator (\(context.manifest.generator.type))")
    guard generator.noiseShape == store.sampleShape else {
      throw DistillError.invalidValue(
        location: "\(entry.path).pairs",
        expected: "a generator whose noise has the pairs' shape \(store.sampleShape)",
        found: "noise of shape \(generator.noiseShape) (generator \"\(context.manifest.generator.type)\")")
    }
    let cursor = PairsCursor(
      store: store, shuffle: entry.bool("shuffle"), seed: context.initialisationRNG(for: entry.path))
    context.addCheckpointState(prefix: entry.path, cursor)
    return RegressionTerm(cursor: cursor, distance: distance)
  }
}
