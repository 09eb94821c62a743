import DistillCore
import DistillDiffusion
import DistillNN
import Foundation
import Testing

@testable import DistillPipeline
@testable import FeatureDistances

/// The per-class figures of a class-conditional generator's evaluation: FD per class against
/// the reference samples of that class, and the classifier's accuracy on the class asked for.
@Suite struct PerClassMetricsTests {
  @Test func perClassFDComparesEachClassWithItsOwnReference() throws {
    var rng = RandomGenerator(seed: 1)
    // Reference: class 0 around 0, class 1 around 5 (labels alternate); generated: class 0
    // drawn like its reference, class 1 around 8.
    let n = 400
    func draw(_ centre: (Int) -> Float) -> Tensor {
      let z = Tensor.normal([n, 2], using: &rng).scalars
      return Tensor(shape: [n, 2], scalars: (0..<(2 * n)).map { z[$0] + centre($0 / 2) })
    }
    let reference = draw { $0 % 2 == 0 ? 0 : 5 }
    let generated = draw { $0 % 2 == 0 ? 0 : 8 }
    let labels = (0..<n).map { $0 % 2 }
    let context = EvaluationContext(
      teacher: nil, data: nil, condition: Condition(labels: labels), classes: ClassConditioning(count: 2)
    ) { _ in Batch(samples: reference, labels: labels) }
    let values = try FeatureDistancesMetric(extractor: "pixels", count: n, k: 3).evaluate(generated, context)
    let fd0 = try #require(values["FD_pixels/class-0"])
    let fd1 = try #require(values["FD_pixels/class-1"])
    // Class 1's means differ by 3 in both coordinates: FD ≈ 18; class 0's only by sampling noise.
    #expect(fd0 < 0.2, "\(values)")
    #expect(Swift.abs(fd1 - 18) < 2, "\(values)")
    #expect(values["class-accuracy"] == nil)
  }

  @Test func classAccuracyIsTheClassifiersAgreementWithTheClassAskedFor() throws {
    var rng = RandomGenerator(seed: 2)
    let network = ImageClassifier(ImageClassifierConfig(inputShape: [1, 8, 8], classes: 3, width: 4, features: 8), using: &rng)
    let classifier = TrainedClassifier(
      network: network, classNames: ["a", "b", "c"], classPriors: [1.0 / 3, 1.0 / 3, 1.0 / 3], heldOutAccuracy: nil,
      heldOutSamples: nil)
    let samples = Tensor.normal([60, 1, 8, 8], using: &rng)
    let requested = (0..<60).map { $0 % 3 }
    let predicted = classifier.predictions(samples)
    let context = EvaluationContext(
      teacher: nil, data: nil, condition: Condition(labels: requested), classes: ClassConditioning(count: 3)
    ) { _ in Batch(samples: Tensor.normal([60, 1, 8, 8], using: &rng)) }
    let values = try FeatureDistancesMetric(extractor: "classifier", count: 60, k: 3, classifier: classifier)
      .evaluate(samples, context)
    let agree = zip(predicted, requested).filter { $0 == $1 }.count
    #expect(values["class-accuracy"] == Double(agree) / 60)
    for k in 0..<3 {
      let rows = requested.indices.filter { requested[$0] == k }
      #expect(values["class-accuracy/class-\(k)"] == Double(rows.filter { predicted[$0] == k }.count) / Double(rows.count))
    }
    // No labelled reference: no per-class FD.
    #expect(values.keys.allSatisfy { !$0.contains("FD_classifier/") })
  }
}
