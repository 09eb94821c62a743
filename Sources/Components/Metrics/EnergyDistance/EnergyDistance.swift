import DistillCore
import DistillPipeline

/// The energy distance between generated and reference samples,
/// `2·E|X−Y| − E|X−X'| − E|Y−Y'|` (Euclidean, V-statistics over all pairs): zero exactly
/// when the distributions agree. The reference is the data source's samples or the
/// analytic teacher's, drawn once with the evaluation seed.
public final class EnergyDistanceMetric: Metric {
  let count: Int

  init(count: Int) { self.count = count }

  public func evaluate(_ samples: Tensor, _ context: EvaluationContext) throws -> [String: Double] {
    guard let reference = try context.referenceSamples(count) else {
      throw DistillError.invalidValue(
        location: "energy-distance", expected: "a data source or analytic teacher to compare with", found: "neither")
    }
    return ["energy-distance": Self.energyDistance(samples, reference, limit: count)]
  }

  /// The energy distance of the first `limit` rows of `x` and `y` (`[N, ...]`, flattened per row).
  public static func energyDistance(_ x: Tensor, _ y: Tensor, limit: Int = .max) -> Double {
    let d = x.count / x.shape[0]
    precondition(y.count / y.shape[0] == d, "samples of \(d) and \(y.count / y.shape[0]) values")
    let a = Array(x.scalars.prefix(min(x.shape[0], limit) * d))
    let b = Array(y.scalars.prefix(min(y.shape[0], limit) * d))
    func meanDistance(_ u: [Float], _ v: [Float]) -> Double {
      let (n, m) = (u.count / d, v.count / d)
      var total = 0.0
      u.withUnsafeBufferPointer { p in
        v.withUnsafeBufferPointer { q in
          for i in 0..<n {
            var row = 0.0
            for j in 0..<m {
              var s: Float = 0
              for k in 0..<d {
                let diff = p[i * d + k] - q[j * d + k]
                s += diff * diff
              }
              row += Double(s.squareRoot())
            }
            total += row
          }
        }
      }
      return total / Double(n * m)
    }
    return 2 * meanDistance(a, b) - meanDistance(a, a) - meanDistance(b, b)
  }
}

public enum EnergyDistance: MetricComponent {
  public static let id = "energy-distance"
  public static let summary = "energy distance between generated and reference samples (0 when they match)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("samples", .integer(2...8192), default: .number(1024), "samples of each side compared")
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Metric {
    EnergyDistanceMetric(count: entry.int("samples"))
  }
}
