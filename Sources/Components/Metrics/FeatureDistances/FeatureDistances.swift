import DistillCore
import DistillPipeline

/// Distances between generated and reference samples on the features of a named extractor,
/// each reported under a name that says what it measures: `FD_<extractor>` (the Fréchet
/// distance of Gaussian fits, computed as pytorch-fid computes FID, but not on Inception
/// features, so not called FID), `KID_<extractor>` (unbiased MMD² with the cubic polynomial
/// kernel), and `precision_<extractor>` / `recall_<extractor>` (k-NN manifolds). The
/// reference is the data source's samples (or an analytic teacher's), drawn once with the
/// evaluation seed; the generated samples come from the evaluation's fixed noise.
public final class FeatureDistancesMetric: Metric {
  let extractor: String
  let count: Int
  let k: Int

  public init(extractor: String, count: Int, k: Int) {
    self.extractor = extractor
    self.count = count
    self.k = k
  }

  /// The features of `samples` (`[N, ...]`): for `pixels`, each sample flattened.
  func features(_ samples: Tensor, limit: Int) -> (values: [Double], rows: Int, columns: Int) {
    let rows = min(samples.shape[0], limit)
    let columns = samples.count / samples.shape[0]
    return (samples.scalars.prefix(rows * columns).map(Double.init), rows, columns)
  }

  public func evaluate(_ samples: Tensor, _ context: EvaluationContext) throws -> [String: Double] {
    guard let reference = try context.referenceSamples(count) else {
      throw DistillError.invalidValue(
        location: "feature-distances", expected: "a data source or analytic teacher to compare with", found: "neither")
    }
    let x = features(samples, limit: count)
    let y = features(reference, limit: count)
    guard x.columns == y.columns else {
      throw DistillError.invalidValue(
        location: "feature-distances", expected: "generated samples of the reference's size (\(y.columns) values)",
        found: "\(x.columns) values")
    }
    guard x.rows > k && y.rows > k else {
      throw DistillError.invalidValue(
        location: "feature-distances", expected: "more than k = \(k) samples on each side",
        found: "\(x.rows) generated, \(y.rows) reference")
    }
    let (precision, recall) = FeatureStatistics.precisionRecall(
      real: y.values, rows: y.rows, generated: x.values, rows: x.rows, columns: x.columns, k: k)
    return [
      "FD_\(extractor)": FeatureStatistics.frechetDistance(x.values, rows: x.rows, y.values, rows: y.rows, columns: x.columns),
      "KID_\(extractor)": FeatureStatistics.kernelDistance(x.values, rows: x.rows, y.values, rows: y.rows, columns: x.columns),
      "precision_\(extractor)": precision,
      "recall_\(extractor)": recall,
    ]
  }
}

public enum FeatureDistances: MetricComponent {
  public static let id = "feature-distances"
  public static let kind = ComponentKind.metric
  public static let summary =
    "FD_<extractor> (Fréchet distance), KID_<extractor>, precision_ and recall_<extractor> (k-NN) against the reference samples"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("extractor", .string(choices: ["pixels"]), default: .string("pixels"), "the features: raw pixels (values)"),
    ParameterSpec("samples", .integer(8...8192), default: .number(1000), "samples of each side compared"),
    ParameterSpec("k", .integer(1...100), default: .number(3), "the neighbour whose distance sets each ball (precision/recall)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Metric {
    guard entry.int("k") < entry.int("samples") else {
      throw DistillError.invalidValue(
        location: "\(entry.path).k", expected: "fewer than samples (\(entry.int("samples")))", found: "\(entry.int("k"))")
    }
    return FeatureDistancesMetric(extractor: entry.string("extractor"), count: entry.int("samples"), k: entry.int("k"))
  }
}
