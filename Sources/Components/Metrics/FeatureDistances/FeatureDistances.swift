import DistillCore
import DistillPipeline

/// Distances between generated and reference samples on the features of a named extractor,
/// each reported under a name that says what it measures: `FD_<extractor>` (the Fréchet
/// distance of Gaussian fits, computed as pytorch-fid computes FID, but not on Inception
/// features, so not called FID), `KID_<extractor>` (unbiased MMD² with the cubic polynomial
/// kernel), `precision_<extractor>` / `recall_<extractor>` (k-NN manifolds, Kynkäänniemi et
/// al. 2019) and `density_<extractor>` / `coverage_<extractor>` (Naeem et al. 2020). The
/// reference is the data source's samples (or an analytic teacher's), drawn once with the
/// evaluation seed; the generated samples come from the evaluation's fixed noise. The
/// `classifier` extractor takes the penultimate features of a classifier trained on the data
/// by `pipeline train-classifier`.
///
/// For a class-conditional generator (evaluation asks row `i` for class `i mod classes`) it
/// also reports, per class k, `FD_<extractor>/class-k` between the samples asked for class k
/// and the reference samples labelled k, and with a classifier `class-accuracy` (the fraction
/// of samples the classifier puts in the class they were asked for) and `class-accuracy/class-k`.
public final class FeatureDistancesMetric: Metric {
  let extractor: String
  let count: Int
  let k: Int
  /// The `classifier` extractor's network; `nil` for `pixels`.
  let classifier: TrainedClassifier?
  /// The reference's features, computed once per evaluation context (whose reference
  /// samples are fixed).
  private var referenceFeatures: (context: ObjectIdentifier, values: [Double], rows: Int, columns: Int)?

  public init(extractor: String, count: Int, k: Int, classifier: TrainedClassifier? = nil) {
    precondition((extractor == "classifier") == (classifier != nil), "the classifier extractor needs its classifier")
    self.extractor = extractor
    self.count = count
    self.k = k
    self.classifier = classifier
  }

  /// The features of the first `limit` samples (`[N, ...]`): for `pixels`, each sample
  /// flattened; for `classifier`, the classifier's penultimate features.
  func features(_ samples: Tensor, limit: Int) -> (values: [Double], rows: Int, columns: Int) {
    let rows = min(samples.shape[0], limit)
    let head = rows == samples.shape[0] ? samples : samples.sliced(axis: 0, 0..<rows)
    let features = classifier?.features(head) ?? head
    let columns = features.count / max(rows, 1)
    return (features.scalars.map(Double.init), rows, columns)
  }

  public func evaluate(_ samples: Tensor, _ context: EvaluationContext) throws -> [String: Double] {
    guard let reference = try context.referenceSamples(count) else {
      throw DistillError.invalidValue(
        location: "feature-distances", expected: "a data source or analytic teacher to compare with", found: "neither")
    }
    if let classifier {
      try classifier.requireInput(Array(samples.shape.dropFirst()), location: "feature-distances (generated samples)")
    }
    let x = features(samples, limit: count)
    let y: (values: [Double], rows: Int, columns: Int)
    if let cached = referenceFeatures, cached.context == ObjectIdentifier(context) {
      y = (cached.values, cached.rows, cached.columns)
    } else {
      if let classifier {
        try classifier.requireInput(Array(reference.shape.dropFirst()), location: "feature-distances (reference samples)")
      }
      y = features(reference, limit: count)
      referenceFeatures = (ObjectIdentifier(context), y.values, y.rows, y.columns)
    }
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
    let (density, coverage) = FeatureStatistics.densityCoverage(
      real: y.values, rows: y.rows, generated: x.values, rows: x.rows, columns: x.columns, k: k)
    var values = [
      "FD_\(extractor)": FeatureStatistics.frechetDistance(x.values, rows: x.rows, y.values, rows: y.rows, columns: x.columns),
      "KID_\(extractor)": FeatureStatistics.kernelDistance(x.values, rows: x.rows, y.values, rows: y.rows, columns: x.columns),
      "precision_\(extractor)": precision,
      "recall_\(extractor)": recall,
      "density_\(extractor)": density,
      "coverage_\(extractor)": coverage,
    ]
    if let classes = context.classes, let requested = context.condition.labels {
      try values.merge(
        perClass(samples, x, y, requested: Array(requested.prefix(x.rows)), classes: classes.count, context), uniquingKeysWith: { $1 })
    }
    return values
  }

  /// The per-class figures of a class-conditional generator's samples (see the type).
  func perClass(
    _ samples: Tensor, _ x: (values: [Double], rows: Int, columns: Int), _ y: (values: [Double], rows: Int, columns: Int),
    requested: [Int], classes: Int, _ context: EvaluationContext
  ) throws -> [String: Double] {
    var values: [String: Double] = [:]
    if let classifier {
      let head = x.rows == samples.shape[0] ? samples : samples.sliced(axis: 0, 0..<x.rows)
      let predicted = classifier.predictions(head)
      values["class-accuracy"] = Double(zip(predicted, requested).filter { $0 == $1 }.count) / Double(x.rows)
      for k in 0..<classes {
        let rows = requested.indices.filter { requested[$0] == k }
        guard !rows.isEmpty else { continue }
        values["class-accuracy/class-\(k)"] = Double(rows.filter { predicted[$0] == k }.count) / Double(rows.count)
      }
    }
    guard let labels = try context.referenceLabels(count), labels.count >= y.rows else { return values }
    func rowsOf(_ v: [Double], _ indices: [Int]) -> [Double] { indices.flatMap { v[($0 * x.columns)..<(($0 + 1) * x.columns)] } }
    for k in 0..<classes {
      let generated = requested.indices.filter { requested[$0] == k }
      let reference = (0..<y.rows).filter { labels[$0] == k }
      guard generated.count > 1, reference.count > 1 else { continue }
      values["FD_\(extractor)/class-\(k)"] = FeatureStatistics.frechetDistance(
        rowsOf(x.values, generated), rows: generated.count, rowsOf(y.values, reference), rows: reference.count,
        columns: x.columns)
    }
    return values
  }
}

/// Where the features of ``FeatureDistancesMetric`` come from.
public enum FeatureExtractor: String, CaseIterable, Sendable {
  /// The samples' values.
  case pixels
  /// The penultimate layer of a classifier trained on the data.
  case classifier
}

public enum FeatureDistances: MetricComponent {
  public static let id = "feature-distances"
  public static let summary =
    "FD_<extractor> (Fréchet distance), KID_<extractor>, precision_, recall_, density_ and coverage_<extractor> (k-NN) against the reference samples"
  public static let parameters: [ParameterSpec] = [
    .choice(
      "extractor", FeatureExtractor.self, default: .pixels,
      "the features: raw pixels (values), or the penultimate layer of a classifier trained on the data (`classifier`)"),
    .optional(
      "classifier", .path(mustExist: true),
      "the classifier folder written by `pipeline train-classifier` (needed by the classifier extractor)"),
    ParameterSpec("samples", .integer(8...8192), default: .number(1000), "samples of each side compared"),
    ParameterSpec("k", .integer(1...100), default: .number(3), "the neighbour whose distance sets each ball (precision, recall, density, coverage)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Metric {
    guard entry.int("k") < entry.int("samples") else {
      throw DistillError.invalidValue(
        location: "\(entry.path).k", expected: "fewer than samples (\(entry.int("samples")))", found: "\(entry.int("k"))")
    }
    let extractor: FeatureExtractor = entry.choice("extractor")
    guard extractor == .classifier else {
      guard !entry.has("classifier") else {
        throw DistillError.invalidValue(
          location: "\(entry.path).classifier", expected: "no classifier unless \"extractor\": \"classifier\"",
          found: "a classifier with extractor \"\(extractor)\"")
      }
      return FeatureDistancesMetric(extractor: extractor.rawValue, count: entry.int("samples"), k: entry.int("k"))
    }
    guard let path = entry.optionalPath("classifier") else {
      throw DistillError.invalidValue(
        location: "\(entry.path).classifier",
        expected: "the classifier folder for \"extractor\": \"classifier\" (train one with `pipeline train-classifier`)",
        found: "nothing")
    }
    let classifier = try TrainedClassifier.load(path: path)
    try classifier.requireInput(context.evaluatedShape, location: "\(entry.path).classifier")
    return FeatureDistancesMetric(
      extractor: extractor.rawValue, count: entry.int("samples"), k: entry.int("k"), classifier: classifier)
  }
}
