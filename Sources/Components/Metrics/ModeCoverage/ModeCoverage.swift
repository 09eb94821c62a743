import DistillCore
import DistillDiffusion
import DistillPipeline

/// Mode coverage against a Gaussian-mixture teacher: each sample is assigned to its most
/// probable component if it lies within `radius` standard deviations of that mean (scaled by
/// √(d/2) in d dimensions, so 3 keeps ~99% of a 2-D mode's mass); a mode is covered when it
/// holds at least `threshold` of its true mass (`count_k / N ≥ threshold · w_k`). Samples
/// between modes count for none, so a collapse to the mixture's mean covers nothing.
public final class ModeCoverageMetric: Metric {
  let mixture: GaussianMixtureDenoiser
  let threshold: Double
  let radius: Double

  init(mixture: GaussianMixtureDenoiser, threshold: Double, radius: Double) {
    self.mixture = mixture
    self.threshold = threshold
    self.radius = radius
  }

  public func evaluate(_ samples: Tensor, _ context: EvaluationContext) throws -> [String: Double] {
    let covered = Self.coveredModes(samples, mixture: mixture, threshold: threshold, radius: radius)
    return [
      "mode-coverage": Double(covered.count) / Double(mixture.means.count), "modes-covered": Double(covered.count),
    ]
  }

  /// The indices of the covered modes.
  public static func coveredModes(
    _ samples: Tensor, mixture: GaussianMixtureDenoiser, threshold: Double, radius: Double = 3
  ) -> [Int] {
    let assigned = mixture.nearestComponent(samples)
    let d = mixture.dimension
    let limit = radius * mixture.std * max(1, (Double(d) / 2).squareRoot())
    let values = samples.scalars
    var counts = [Int](repeating: 0, count: mixture.means.count)
    for (i, k) in assigned.enumerated() {
      var squared = 0.0
      for j in 0..<d {
        let diff = Double(values[i * d + j]) - mixture.means[k][j]
        squared += diff * diff
      }
      if squared.squareRoot() <= limit { counts[k] += 1 }
    }
    let n = Double(assigned.count)
    return counts.indices.filter { Double(counts[$0]) / n >= threshold * mixture.weights[$0] }
  }
}

public enum ModeCoverage: MetricComponent {
  public static let id = "mode-coverage"
  public static let summary =
    "fraction of modes holding at least `threshold` of their mass: a Gaussian-mixture teacher's, or the classes of a trained classifier"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("threshold", .number(0...1), default: .number(0.5), "the share of a mode's true mass that counts as covered"),
    ParameterSpec(
      "radius", .number(0.1...100), default: .number(3),
      "how far from a mean, in standard deviations, a sample counts for it (Gaussian-mixture teacher)"),
    .optional(
      "classifier", .path(mustExist: true),
      "a classifier folder from `pipeline train-classifier`: its classes are the modes (for images)"),
    ParameterSpec(
      "confidence", .number(0...1), default: .number(0.5),
      "the classifier probability at which an image counts for its most probable class (with classifier)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Metric {
    if let path = entry.optionalPath("classifier") {
      let classifier = try TrainedClassifier.load(path: path)
      try classifier.requireInput(context.generator?.sampleShape ?? context.sampleShape, location: "\(entry.path).classifier")
      return ClassifierModeCoverageMetric(
        classifier: classifier, threshold: entry.double("threshold"), confidence: entry.double("confidence"))
    }
    guard let mixture = context.teacher as? GaussianMixtureDenoiser else {
      throw DistillError.invalidValue(
        location: entry.path,
        expected: "a gaussian-mixture teacher (mode-coverage knows its modes) or a \"classifier\" whose classes are the modes",
        found: context.teacher.map { "\"\($0.summary)\"" } ?? "no teacher")
    }
    return ModeCoverageMetric(mixture: mixture, threshold: entry.double("threshold"), radius: entry.double("radius"))
  }
}
