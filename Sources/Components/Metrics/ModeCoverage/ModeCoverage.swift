import DistillCore
import DistillDiffusion
import DistillPipeline

/// Mode coverage against a Gaussian-mixture teacher: each sample is assigned to its most
/// probable component; a mode is covered when it holds at least `threshold` of its true
/// mass (`count_k / N ≥ threshold · w_k`). Reports the covered fraction and count.
public final class ModeCoverageMetric: Metric {
  let mixture: GaussianMixtureDenoiser
  let threshold: Double

  init(mixture: GaussianMixtureDenoiser, threshold: Double) {
    self.mixture = mixture
    self.threshold = threshold
  }

  public func evaluate(_ samples: Tensor, _ context: EvaluationContext) throws -> [String: Double] {
    let covered = Self.coveredModes(samples, mixture: mixture, threshold: threshold)
    return [
      "mode-coverage": Double(covered.count) / Double(mixture.means.count), "modes-covered": Double(covered.count),
    ]
  }

  /// The indices of the covered modes.
  public static func coveredModes(_ samples: Tensor, mixture: GaussianMixtureDenoiser, threshold: Double) -> [Int] {
    let assigned = mixture.nearestComponent(samples)
    var counts = [Int](repeating: 0, count: mixture.means.count)
    for k in assigned { counts[k] += 1 }
    let n = Double(assigned.count)
    return counts.indices.filter { Double(counts[$0]) / n >= threshold * mixture.weights[$0] }
  }
}

public enum ModeCoverage: MetricComponent {
  public static let id = "mode-coverage"
  public static let kind = ComponentKind.metric
  public static let summary = "fraction of a Gaussian-mixture teacher's modes holding at least `threshold` of their mass"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("threshold", .number(0...1), default: .number(0.5), "the share of a mode's true mass that counts as covered")
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Metric {
    guard let mixture = context.teacher as? GaussianMixtureDenoiser else {
      throw DistillError.invalidValue(
        location: entry.path, expected: "a gaussian-mixture teacher (mode-coverage knows its modes)",
        found: context.teacher.map { "\"\($0.summary)\"" } ?? "no teacher")
    }
    return ModeCoverageMetric(mixture: mixture, threshold: entry.double("threshold"))
  }
}
