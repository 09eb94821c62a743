import DistillCore
import DistillDiffusion
import FeatureDistances
import Foundation
import Testing

@testable import DistillPipeline
@testable import ModeCoverage

/// Density and coverage (Naeem et al. 2020) and the Gaussian-mixture sharpness figures of
/// `mode-coverage`, against values worked out by hand.
@Suite struct SharpnessMetricsTests {
  /// Real points 0, 1, 3, 7 on a line; generated 0.5, 0.6, 2.5, 20.
  let real: [Double] = [0, 1, 3, 7]
  let generated: [Double] = [0.5, 0.6, 2.5, 20]

  @Test func densityAndCoverageByHand() {
    // k = 1: squared radii 1, 1, 4, 16. 0.5 and 0.6 lie in the balls of 0 and 1, 2.5 in the
    // ball of 3, 20 in none: density (2 + 2 + 1 + 0) / (1 · 4), coverage 3 of 4 real points.
    let one = FeatureStatistics.densityCoverage(
      real: real, rows: 4, generated: generated, rows: 4, columns: 1, k: 1)
    #expect(one.density == 1.25 && one.coverage == 0.75)
    // k = 2: squared radii 9, 4, 16, 36. 0.5 and 0.6 lie in the balls of 0, 1, 3; 2.5 in all
    // four; 20 in none: density (3 + 3 + 4 + 0) / (2 · 4), every real point covered.
    let two = FeatureStatistics.densityCoverage(
      real: real, rows: 4, generated: generated, rows: 4, columns: 1, k: 2)
    #expect(two.density == 1.25 && two.coverage == 1)
    // Far away: nothing.
    let far = FeatureStatistics.densityCoverage(
      real: real, rows: 4, generated: generated.map { $0 + 100 }, rows: 4, columns: 1, k: 2)
    #expect(far.density == 0 && far.coverage == 0)
  }

  @Test func featureDistancesReportsDensityAndCoverage() throws {
    let metric = FeatureDistancesMetric(extractor: "pixels", count: 4, k: 1)
    let reference = Tensor(shape: [4, 1], scalars: real.map(Float.init))
    let context = EvaluationContext(teacher: nil, data: nil) { _ in reference }
    let values = try metric.evaluate(
      Tensor(shape: [4, 1], scalars: generated.map(Float.init)), context)
    #expect(values["density_pixels"] == 1.25 && values["coverage_pixels"] == 0.75)
    // Precision: 0.5, 0.6 and 2.5 lie in real balls (k = 1), 20 does not. Recall: generated
    // squared radii 0.01, 0.01, 3.61, 306.25; 1 and 3 lie in the ball of 2.5, 7 in that of 20
    // (169 ≤ 306.25), 0 in none (0.25 > 0.01).
    #expect(values["precision_pixels"] == 0.75 && values["recall_pixels"] == 0.75)
  }

  @Test func mixtureFiguresByHand() throws {
    // Modes (−2, 0) with weight 0.75 and (2, 0) with 0.25, std 0.5: 3 std is 1.5.
    let mixture = try GaussianMixtureDenoiser(
      means: [[-2, 0], [2, 0]], std: 0.5, weights: [0.75, 0.25])
    let points: [Float] = [
      -2, 0, -2, 0, -2, 1.4,  // mode 0, within
      -2, 1.6,  // nearest mode 0, outside 1.5
      2, 0, 2, 0.5,  // mode 1, within
      0, 0,  // between: 2 from both, outside
    ]
    let samples = Tensor(shape: [7, 2], scalars: points)
    let metric = ModeCoverageMetric(mixture: mixture, threshold: 0.5, radius: 3)
    let values = try metric.evaluate(
      samples, EvaluationContext(teacher: nil, data: nil) { _ in nil })
    // Mode 0: 3 of 7 samples over a weight of 0.75; mode 1: 2 of 7 over 0.25.
    let (mass0, mass1) = (3.0 / (7 * 0.75), 2.0 / (7 * 0.25))
    #expect(
      abs(values["mode-mass/0"]! - mass0) < 1e-12 && abs(values["mode-mass/1"]! - mass1) < 1e-12)
    #expect(abs(values["within-3std"]! - 5.0 / 7) < 1e-12)
    #expect(abs(values["min-mode-mass"]! - mass0) < 1e-12)
    #expect(values["modes-at-0.5"] == 2 && values["modes-at-0.7"] == 1)
    #expect(values["mode-coverage"] == 1 && values["modes-covered"] == 2)
    // Another radius names its figure by it.
    let wide = try ModeCoverageMetric(mixture: mixture, threshold: 0.5, radius: 3.5)
      .evaluate(samples, EvaluationContext(teacher: nil, data: nil) { _ in nil })
    #expect(abs(wide["within-3.5std"]! - 6.0 / 7) < 1e-12)
  }

  @Test func anExactSamplerScoresAsItShould() throws {
    // 8 modes on a ring, std 0.2: 1 − e^{−4.5} = 0.989 of an exact sample lies within 3 std.
    let means = (0..<8).map { k -> [Float] in
      let a = Float(k) * .pi / 4
      return [2 * cos(a), 2 * sin(a)]
    }
    let mixture = try GaussianMixtureDenoiser(means: means, std: 0.2)
    var rng = RandomGenerator(seed: 3)
    let (samples, _) = mixture.sampleWithComponents(count: 8192, using: &rng)
    let mass = ModeCoverageMetric.modeMass(samples, mixture: mixture)
    let within = ModeCoverageMetric.withinFraction(mass, weights: mixture.weights)
    #expect(abs(within - 0.989) < 0.006, "within 3 std: \(within)")
    #expect(mass.allSatisfy { $0 > 0.85 && $0 < 1.15 }, "\(mass)")
  }
}
