import DistillCore
import DistillDiffusion
import DistillPipeline

/// Mode coverage against a Gaussian-mixture teacher (or data source): each sample is assigned to its most
/// probable component if it lies within `radius` standard deviations of that mean (scaled by
/// √(d/2) in d dimensions, so 3 keeps ~99% of a 2-D mode's mass); a mode is covered when it
/// holds at least `threshold` of its true mass (`count_k / N ≥ threshold · w_k`). Samples
/// between modes count for none, so a collapse to the mixture's mean covers nothing.
///
/// Besides `mode-coverage` and `modes-covered` it reports the sharpness figures, which need
/// no reference samples: `within-<radius>std` (the fraction of samples inside the radius of
/// their mode: 0.99 for an exact sampler in 2-D at radius 3), `mode-mass/<k>` (`count_k /
/// (N · w_k)`, 1 for an exact sampler up to the 1% outside), `min-mode-mass`, and
/// `modes-at-0.5` / `modes-at-0.7` (how many modes hold at least that share of their weight).
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
    let mass = Self.modeMass(samples, mixture: mixture, radius: radius)
    let covered = mass.filter { $0 >= threshold }.count
    var values: [String: Double] = [
      "mode-coverage": Double(covered) / Double(mixture.means.count), "modes-covered": Double(covered),
      "within-\(Self.label(radius))std": Self.withinFraction(mass, weights: mixture.weights),
      "min-mode-mass": mass.min() ?? 0,
      "modes-at-0.5": Double(mass.filter { $0 >= 0.5 }.count),
      "modes-at-0.7": Double(mass.filter { $0 >= 0.7 }.count),
    ]
    for (k, m) in mass.enumerated() { values["mode-mass/\(k)"] = m }
    return values
  }

  /// `radius` as it appears in a figure's name: `3` for 3.0, `2.5` for 2.5.
  static func label(_ radius: Double) -> String {
    radius == radius.rounded() ? String(Int(radius)) : String(radius)
  }

  /// The fraction of all samples within the radius of their mode, from the modes' masses.
  static func withinFraction(_ mass: [Double], weights: [Double]) -> Double {
    zip(mass, weights).reduce(0) { $0 + $1.0 * $1.1 }
  }

  /// The indices of the covered modes.
  public static func coveredModes(
    _ samples: Tensor, mixture: GaussianMixtureDenoiser, threshold: Double, radius: Double = 3
  ) -> [Int] {
    let mass = modeMass(samples, mixture: mixture, radius: radius)
    return mass.indices.filter { mass[$0] >= threshold }
  }

  /// Each mode's mass over its weight: `count_k / (N · w_k)`, counting the samples whose most
  /// probable component is k and that lie within `radius` standard deviations of its mean
  /// (scaled by √(d/2) in d dimensions).
  public static func modeMass(_ samples: Tensor, mixture: GaussianMixtureDenoiser, radius: Double = 3) -> [Double] {
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
    let n = Double(max(assigned.count, 1))
    return counts.indices.map { Double(counts[$0]) / (n * mixture.weights[$0]) }
  }
}

public enum ModeCoverage: MetricComponent {
  public static let id = "mode-coverage"
  public static let summary =
    "fraction of modes holding at least `threshold` of their mass (a Gaussian-mixture teacher's, with within-3std and each mode's mass over its weight; or a classifier's classes)"
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
      try classifier.requireInput(context.evaluatedShape, location: "\(entry.path).classifier")
      return ClassifierModeCoverageMetric(
        classifier: classifier, threshold: entry.double("threshold"), confidence: entry.double("confidence"))
    }
    guard
      let mixture = context.teacher as? GaussianMixtureDenoiser ?? (context.data as? any GaussianMixtureDataSource)?.mixture
    else {
      throw DistillError.invalidValue(
        location: entry.path,
        expected:
          "a gaussian-mixture teacher or data source (mode-coverage knows its modes) or a \"classifier\" whose classes are the modes",
        found: context.teacher.map { "\"\($0.summary)\"" } ?? "no teacher")
    }
    return ModeCoverageMetric(mixture: mixture, threshold: entry.double("threshold"), radius: entry.double("radius"))
  }
}
