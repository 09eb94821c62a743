import Foundation

/// The exact denoiser of an isotropic Gaussian mixture: an analytic teacher whose every
/// output is the true posterior mean, at every noise level of any VP schedule.
///
/// The data are `p₀ = Σ_k w_k·N(μ_k, s₀²·I)` in `D` dimensions (a batch is `[N, D]`, or any
/// `[N, ...]` whose trailing dimensions hold `D` values, e.g. `[N, C, H, W]`). With
/// `a = √ᾱ_t` and `s = √(1−ᾱ_t)`, `p_t = Σ_k w_k·N(a·μ_k, (a²s₀² + s²)·I)` and
///
/// `E[x₀ | x_t] = Σ_k r_k(x_t)·(μ_k + a·s₀²/(a²s₀² + s²)·(x_t − a·μ_k))`,
///
/// with responsibilities `r_k ∝ w_k·N(x_t; a·μ_k, (a²s₀² + s²)·I)` computed by log-sum-exp.
/// Everything is computed in `Double`; the output is converted to ``prediction``. The output
/// is a constant tensor: no gradient flows back to `x` (teachers are not differentiated).
///
/// With ``componentClasses`` the mixture is class-conditional: class `c`'s data are the
/// components of class `c` with their weights renormalised, so the exact conditional denoiser
/// is the same formula over those components; the null label asks the whole mixture.
public final class GaussianMixtureDenoiser: Denoiser {
  public let means: [[Double]]
  /// The standard deviation s₀ of every component.
  public let std: Double
  /// The mixture weights (positive, summing to 1).
  public let weights: [Double]
  public let schedule: NoiseSchedule
  /// The parameters of ``schedule`` when it was built from them (written to `denoiser.json`).
  public var scheduleConfig: ScheduleConfig?
  public let prediction: Prediction
  /// The shape of one sample: `[D]` unless given (e.g. `[C, H, W]` with `C·H·W = D`).
  public let sampleShape: [Int]?
  /// The class of each component for a class-conditional mixture (classes `0..<C`, each with
  /// at least one component); `nil` for an unconditional one.
  public let componentClasses: [Int]?

  /// The dimension `D` of the data.
  public var dimension: Int { means[0].count }

  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` for an empty mixture,
  ///   means of unequal dimensions, `std ≤ 0`, weights that are not positive and normalised
  ///   (to within 1e-4; they are then renormalised exactly), or a `sampleShape` of another size.
  public convenience init(
    means: [[Float]], std: Float, weights: [Float]? = nil, schedule: NoiseSchedule = ScheduleConfig().schedule,
    prediction: Prediction = .epsilon, sampleShape: [Int]? = nil, componentClasses: [Int]? = nil
  ) throws {
    try self.init(
      means: means.map { $0.map(Double.init) }, std: Double(std), weights: weights?.map(Double.init),
      schedule: schedule, prediction: prediction, sampleShape: sampleShape, componentClasses: componentClasses,
      location: "GaussianMixtureDenoiser")
  }

  /// As the `Float` initialiser; `location` prefixes the keys named in errors (e.g. a file).
  public init(
    means: [[Double]], std: Double, weights: [Double]?, schedule: NoiseSchedule, prediction: Prediction,
    sampleShape: [Int]? = nil, componentClasses: [Int]? = nil, location: String
  ) throws {
    func fail(_ key: String, _ expected: String, _ found: String) -> DistillError {
      .invalidValue(location: "\(location): \(key)", expected: expected, found: found)
    }
    guard let first = means.first, !first.isEmpty else {
      throw fail("means", "at least one mean of at least one dimension", means.isEmpty ? "none" : "an empty mean")
    }
    for (k, mean) in means.enumerated() {
      guard mean.count == first.count else {
        throw fail("means", "means of equal dimension (\(first.count))", "\(mean.count) values in mean \(k)")
      }
      guard mean.allSatisfy(\.isFinite) else { throw fail("means", "finite values", "a non-finite value in mean \(k)") }
    }
    guard std > 0, std.isFinite else { throw fail("std", "a positive number", String(std)) }
    var w = weights ?? Array(repeating: 1 / Double(means.count), count: means.count)
    guard w.count == means.count else {
      throw fail("weights", "one weight per mean (\(means.count))", "\(w.count) weights")
    }
    guard w.allSatisfy({ $0 > 0 && $0.isFinite }) else {
      throw fail("weights", "positive weights", w.map { String($0) }.joined(separator: ", "))
    }
    let total = w.reduce(0, +)
    guard Swift.abs(total - 1) <= 1e-4 else { throw fail("weights", "weights summing to 1", "a sum of \(total)") }
    w = w.map { $0 / total }
    if let sampleShape {
      // Multiplied with overflow checks: the sizes come from a file ([2^40, 2^40] trapped).
      var product = 1
      var overflow = false
      for size in sampleShape where !overflow { (product, overflow) = product.multipliedReportingOverflow(by: size) }
      guard sampleShape.allSatisfy({ $0 > 0 }), !overflow, product == first.count else {
        throw fail("sampleShape", "positive sizes whose product is the dimension \(first.count)", "\(sampleShape)")
      }
    }
    if let componentClasses {
      let count = (componentClasses.max() ?? -1) + 1
      guard componentClasses.count == means.count, componentClasses.allSatisfy({ $0 >= 0 }),
        Set(componentClasses).count == count
      else {
        throw fail(
          "classes", "one class per mean (\(means.count)), the classes 0..<C each with a component",
          "\(componentClasses)")
      }
    }
    self.componentClasses = componentClasses
    self.means = means
    self.std = std
    self.weights = w
    self.schedule = schedule
    self.prediction = prediction
    self.sampleShape = sampleShape ?? [first.count]
  }

  public var summary: String {
    "Gaussian mixture: \(means.count) components in \(dimension) dimensions, std \(std) (exact denoiser, "
      + "\(prediction.rawValue) output)"
  }

  public func validateInput(shape: [Int], location: String) throws {
    guard shape.count >= 2, shape.dropFirst().reduce(1, *) == dimension else {
      throw DistillError.invalidValue(
        location: location, expected: "a batch [N, ...] of \(dimension) values per sample", found: "shape \(shape)")
    }
  }

  public var classes: ClassConditioning? {
    componentClasses.map { let count = $0.max()! + 1; return ClassConditioning(count: count, null: count) }
  }

  public func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Condition) -> Tensor {
    output(x, alphaBars: timesteps.map { schedule.alphaBar(at: Double($0)) }, as: prediction, condition: condition)
  }

  /// The exact posterior mean E[x₀ | x_t] for one ᾱ per sample (any continuous VP level).
  public func posteriorMean(_ x: Tensor, alphaBars: [Double], condition: Condition = .none) -> Tensor {
    output(x, alphaBars: alphaBars, as: .sample, condition: condition)
  }

  /// The exact estimate of type `target` for one ᾱ per sample, conditional on each row's class
  /// (the whole mixture for no condition or the null label).
  public func output(_ x: Tensor, alphaBars: [Double], as target: Prediction, condition: Condition = .none) -> Tensor {
    let n = x.shape[0]
    let d = dimension
    precondition(
      x.rank >= 2 && x.count == n * d, "Gaussian mixture input \(x.shape) does not hold \(d) values per sample")
    precondition(alphaBars.count == n, "\(alphaBars.count) timesteps for a batch of \(n)")
    let input = x.scalars
    let logWeights = weights.map { Foundation.log($0) }
    let k = means.count
    let labels = condition.labels.map { labels in
      precondition(labels.count == n, "\(labels.count) class labels for a batch of \(n)")
      return labels
    }
    var result = [Float](repeating: 0, count: n * d)
    var logits = [Double](repeating: 0, count: k)
    var x0 = [Double](repeating: 0, count: d)
    for i in 0..<n {
      let abar = Swift.min(Swift.max(alphaBars[i], 0), 1)
      let a = abar.squareRoot()
      let s = (1 - abar).squareRoot()
      let variance = a * a * std * std + s * s
      let gain = a * std * std / variance
      let row = i * d
      let label = labels?[i]
      for c in 0..<k {
        if let label, let componentClasses, label < classes!.count, componentClasses[c] != label {
          logits[c] = -.infinity
          continue
        }
        var squared = 0.0
        for j in 0..<d {
          let diff = Double(input[row + j]) - a * means[c][j]
          squared += diff * diff
        }
        logits[c] = logWeights[c] - squared / (2 * variance)
      }
      let top = logits.max()!
      var total = 0.0
      for c in 0..<k {
        logits[c] = Foundation.exp(logits[c] - top)
        total += logits[c]
      }
      for j in 0..<d { x0[j] = gain * Double(input[row + j]) }
      for c in 0..<k {
        let r = logits[c] / total * (1 - gain * a)
        for j in 0..<d { x0[j] += r * means[c][j] }
      }
      for j in 0..<d {
        let xt = Double(input[row + j])
        let eps = s > 0 ? (xt - a * x0[j]) / s : 0
        switch target {
        case .sample: result[row + j] = Float(x0[j])
        case .epsilon: result[row + j] = Float(eps)
        case .vPrediction: result[row + j] = Float(a * eps - s * x0[j])
        }
      }
    }
    return Tensor(shape: x.shape, scalars: result)
  }

  /// `count` samples of the true data distribution p₀, `[count] + sampleShape`, with the
  /// component each came from.
  public func sampleWithComponents(count: Int, using generator: inout RandomGenerator) -> (
    samples: Tensor, components: [Int]
  ) {
    let d = dimension
    let u = generator.uniform(count: count)
    let z = generator.normal(count: count * d)
    var cumulative: [Double] = []
    var running = 0.0
    for w in weights {
      running += w
      cumulative.append(running)
    }
    var components: [Int] = []
    var values = [Float](repeating: 0, count: count * d)
    for i in 0..<count {
      let c = cumulative.firstIndex { Double(u[i]) < $0 } ?? (weights.count - 1)
      components.append(c)
      for j in 0..<d { values[i * d + j] = Float(means[c][j] + std * Double(z[i * d + j])) }
    }
    return (Tensor(shape: [count] + (sampleShape ?? [d]), scalars: values), components)
  }

  /// `count` samples of the true data distribution p₀, `[count] + sampleShape`.
  public func sample(count: Int, using generator: inout RandomGenerator) -> Tensor {
    sampleWithComponents(count: count, using: &generator).samples
  }

  /// For each sample of `x` (`[N, ...]`), the component with the largest posterior
  /// probability under p₀ (`argmax_k w_k·N(x; μ_k, s₀²·I)`): to sort samples by mode.
  public func nearestComponent(_ x: Tensor) -> [Int] {
    let n = x.shape[0]
    let d = dimension
    precondition(x.count == n * d, "input \(x.shape) does not hold \(d) values per sample")
    let input = x.scalars
    return (0..<n).map { i in
      var best = 0
      var bestScore = -Double.infinity
      for (c, mean) in means.enumerated() {
        var squared = 0.0
        for j in 0..<d {
          let diff = Double(input[i * d + j]) - mean[j]
          squared += diff * diff
        }
        let score = Foundation.log(weights[c]) - squared / (2 * std * std)
        if score > bestScore {
          bestScore = score
          best = c
        }
      }
      return best
    }
  }
}
