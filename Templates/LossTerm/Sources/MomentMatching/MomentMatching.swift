import DistillCore
import DistillPipeline

/// Moment matching: pulls the generated batch's per-dimension mean and standard deviation
/// onto the data batch's, `mean_d (μ_gen − μ_data)² + (σ_gen − σ_data)²`.
///
/// A deliberately small example of a loss term: it reads the step's generated samples
/// (`context.generated()`, which records gradients into the generator) and data
/// (`context.batch()`), and logs a diagnostic with `context.log`.
public final class MomentMatchingTerm: LossTerm {
  let epsilon: Float

  init(epsilon: Float) { self.epsilon = epsilon }

  public func loss(_ context: StepContext) throws -> Tensor {
    guard let data = try context.batch().samples else {
      throw DistillError.invalidValue(location: "data", expected: "a data source with samples", found: "none")
    }
    let generated = context.generated()
    let n = generated.shape[0]
    let x = generated.reshaped([n, generated.count / n])
    let y = data.reshaped([data.shape[0], data.count / data.shape[0]])
    let (meanX, stdX) = moments(x)
    let (meanY, stdY) = moments(y.detached())
    let meanGap = (meanX - meanY).square().mean()
    context.log("moment-matching/mean-gap", Double(meanGap.item))
    return meanGap + (stdX - stdY).square().mean()
  }

  /// Per-dimension mean and standard deviation of the rows of `x` (`[N, D]`).
  private func moments(_ x: Tensor) -> (mean: Tensor, std: Tensor) {
    let mean = x.mean(axes: [0], keepDims: true)
    let variance = (x - mean).square().mean(axes: [0], keepDims: true)
    return (mean, (variance + epsilon).sqrt())
  }
}

/// The manifest entry `{"type": "moment-matching", "epsilon": 1e-6}` (every loss entry also takes
/// `weight`, which the trainer applies).
public enum MomentMatching: LossComponent {
  public static let id = "moment-matching"
  public static let summary = "match the generated batch's per-dimension mean and std to the data batch's (template example)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("epsilon", .number(0...1), default: .number(1e-6), "added to the variance before the square root"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    guard context.data != nil else {
      throw DistillError.invalidValue(location: entry.path, expected: "a manifest with a data source", found: "no data")
    }
    return MomentMatchingTerm(epsilon: entry.float("epsilon"))
  }
}

/// The components this package adds; `my-pipeline` passes them to `PipelineCLI.main`.
/// (Computed, so that no global holds non-Sendable metatypes under strict concurrency.)
public var myComponents: [any ComponentDescribing.Type] { [MomentMatching.self] }
