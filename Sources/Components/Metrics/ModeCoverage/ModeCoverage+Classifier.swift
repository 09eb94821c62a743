import DistillCore
import DistillPipeline

/// Mode coverage by a classifier trained on the data (`pipeline train-classifier`): each
/// image counts for the class the classifier gives the highest probability, when that
/// probability is at least `confidence` (else for none); a class is covered when it holds at
/// least `threshold` of its true mass (`count_k / N ≥ threshold · prior_k`, the priors being
/// the classes' shares of the classifier's training data). Reports `mode-coverage` (the
/// fraction of classes covered), `modes-covered`, `class-fraction/<name>` (`count_k / N` for
/// each class) and `unclassified-fraction`.
public final class ClassifierModeCoverageMetric: Metric {
  let classifier: TrainedClassifier
  let threshold: Double
  let confidence: Double

  public init(classifier: TrainedClassifier, threshold: Double, confidence: Double) {
    self.classifier = classifier
    self.threshold = threshold
    self.confidence = confidence
  }

  public func evaluate(_ samples: Tensor, _ context: EvaluationContext) throws -> [String: Double] {
    try classifier.requireInput(Array(samples.shape.dropFirst()), location: "mode-coverage (generated samples)")
    let fractions = classFractions(samples)
    let covered = fractions.indices.filter { fractions[$0] >= threshold * classifier.classPriors[$0] }
    var values: [String: Double] = [
      "mode-coverage": Double(covered.count) / Double(fractions.count), "modes-covered": Double(covered.count),
      "unclassified-fraction": max(0, 1 - fractions.reduce(0, +)),
    ]
    for (name, fraction) in zip(classifier.classNames, fractions) { values["class-fraction/\(name)"] = fraction }
    return values
  }

  /// The share of `samples` that counts for each class.
  public func classFractions(_ samples: Tensor) -> [Double] {
    let probabilities = classifier.probabilities(samples)
    let (n, k) = (probabilities.shape[0], probabilities.shape[1])
    let p = probabilities.scalars
    var counts = [Int](repeating: 0, count: k)
    for i in 0..<n {
      let best = (0..<k).max { p[i * k + $0] < p[i * k + $1] }!
      if Double(p[i * k + best]) >= confidence { counts[best] += 1 }
    }
    return counts.map { Double($0) / Double(max(n, 1)) }
  }
}
