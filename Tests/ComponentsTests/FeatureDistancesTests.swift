import BuiltInComponents
import DistillCore
import FeatureDistances
import Foundation
import Testing

@testable import DistillPipeline

/// FD, KID and k-NN precision/recall against scipy and brute force
/// (Fixtures/make_feature_metrics_fixture.py prints the expected values), and against cases
/// whose answer is known in closed form.
@Suite struct FeatureDistancesTests {
  let n = 40
  let m = 30
  let d = 5
  var x: [Double] {
    var values: [Double] = []
    for i in 0..<n {
      for j in 0..<d {
        let a = 1.3 * Double(i) + 0.7 * Double(j)
        values.append(sin(a) + 0.1 * Double(j))
      }
    }
    return values
  }
  var y: [Double] {
    var values: [Double] = []
    for i in 0..<m {
      for j in 0..<d {
        let a = 1.1 * Double(i) + 0.7 * Double(j) + 0.5
        values.append(1.2 * sin(a) + 0.1 * Double(j) + 0.2)
      }
    }
    return values
  }

  @Test func matchesScipyAndBruteForce() {
    let fd = FeatureStatistics.frechetDistance(x, rows: n, y, rows: m, columns: d)
    // Eigenvalues near 0 carry rounding of 1e-16 into their square roots (1e-8).
    #expect(abs(fd - 0.327398935985) < 1e-6, "FD \(fd)")
    let kid = FeatureStatistics.kernelDistance(x, rows: n, y, rows: m, columns: d)
    #expect(abs(kid - 0.20803412278) < 1e-9, "KID \(kid)")
    let (precision, recall) = FeatureStatistics.precisionRecall(real: x, rows: n, generated: y, rows: m, columns: d, k: 3)
    #expect(precision == 0.5 && recall == 0.75)
  }

  @Test func closedFormCases() {
    // Four corners of a square: mean 0, covariance 4/3 I. Scaled by 2 and shifted by (3, 0):
    // FD = 9 + (8/3 + 32/3) - 2 (8/3 + 8/3) = 35/3.
    let corners: [Double] = [-1, -1, 1, 1, -1, 1, 1, -1]
    let moved = stride(from: 0, to: 8, by: 2).flatMap { [2 * corners[$0] + 3, 2 * corners[$0 + 1]] }
    #expect(abs(FeatureStatistics.frechetDistance(corners, rows: 4, moved, rows: 4, columns: 2) - 35.0 / 3) < 1e-10)
    // A set against itself: FD 0 (to rounding), precision and recall 1.
    #expect(abs(FeatureStatistics.frechetDistance(x, rows: n, x, rows: n, columns: d)) < 1e-6)
    let same = FeatureStatistics.precisionRecall(real: x, rows: n, generated: x, rows: n, columns: d, k: 3)
    #expect(same.precision == 1 && same.recall == 1)
    // Generated samples collapsed onto 3 real points (each thrice, so with k = 2 their balls
    // have radius 0): every one is precise, and only those 3 of the 40 real points are recalled.
    let collapsed = Array(x.prefix(3 * d)) + Array(x.prefix(3 * d)) + Array(x.prefix(3 * d))
    let mode = FeatureStatistics.precisionRecall(real: x, rows: n, generated: collapsed, rows: 9, columns: d, k: 2)
    #expect(mode.precision == 1 && mode.recall == 3.0 / 40)
    // Far apart: nothing overlaps, and FD is the squared distance of the means plus the spread.
    let far = x.map { $0 + 100 }
    let apart = FeatureStatistics.precisionRecall(real: x, rows: n, generated: far, rows: n, columns: d, k: 3)
    #expect(apart.precision == 0 && apart.recall == 0)
    #expect(abs(FeatureStatistics.frechetDistance(x, rows: n, far, rows: n, columns: d) - 5 * 10_000) < 1e-6)
  }

  @Test func theMetricReportsNamedFiguresFromTheReference() throws {
    let metric = FeatureDistancesMetric(extractor: "pixels", count: 30, k: 3)
    let reference = Tensor(shape: [n, d], scalars: x.map(Float.init))
    let context = EvaluationContext(teacher: nil, data: nil) { _ in reference }
    let values = try metric.evaluate(Tensor(shape: [m, d], scalars: y.map(Float.init)), context)
    #expect(
      Set(values.keys) == [
        "FD_pixels", "KID_pixels", "precision_pixels", "recall_pixels", "density_pixels", "coverage_pixels",
      ])
    #expect(values.values.allSatisfy { $0.isFinite } && values["FD_pixels"]! > 0)
    let none = EvaluationContext(teacher: nil, data: nil) { _ in nil }
    #expect(throws: DistillError.self) { try metric.evaluate(reference, none) }
  }
}
