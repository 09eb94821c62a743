/// Helpers shared by the test targets: closeness checks, deterministic tensors and the
/// central-difference gradient checker.

import Testing

import DistillCore

/// Whether `actual` and `expected` have one shape and agree elementwise within
/// `atol + rtol * |expected|`; records a failure naming the worst element otherwise.
@discardableResult
public func expectClose(
  _ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6, _ label: String = "",
  sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
  guard actual.shape == expected.shape else {
    Issue.record("\(label.isEmpty ? "" : label + ": ")shape \(actual.shape) differs from \(expected.shape)", sourceLocation: sourceLocation)
    return false
  }
  return expectClose(actual.scalars, expected.scalars, rtol: rtol, atol: atol, label, sourceLocation: sourceLocation)
}

@discardableResult
public func expectClose(
  _ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6, _ label: String = "",
  sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
  guard actual.count == expected.count else {
    Issue.record("\(label.isEmpty ? "" : label + ": ")\(actual.count) elements, expected \(expected.count)", sourceLocation: sourceLocation)
    return false
  }
  var worst = (index: -1, excess: Float(0))
  for i in actual.indices {
    let error = abs(actual[i] - expected[i])
    let allowed = atol + rtol * abs(expected[i])
    if !(error <= allowed) && (worst.index < 0 || error - allowed > worst.excess) {
      worst = (i, error - allowed)
    }
  }
  if worst.index >= 0 {
    Issue.record(
      "\(label.isEmpty ? "" : label + ": ")element \(worst.index): \(actual[worst.index]) vs expected \(expected[worst.index])",
      sourceLocation: sourceLocation)
    return false
  }
  return true
}

/// A deterministic pseudo-random tensor for tests (a simple LCG; independent of the RNG under test).
public func testTensor(_ shape: [Int], seed: UInt64 = 1, range: ClosedRange<Float> = -1...1) -> Tensor {
  var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
  let n = shape.reduce(1, *)
  var values = [Float](repeating: 0, count: n)
  for i in 0..<n {
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    let unit = Float(state >> 40) / Float(1 << 24)
    values[i] = range.lowerBound + unit * (range.upperBound - range.lowerBound)
  }
  return Tensor(shape: shape, scalars: values)
}

/// Checks the gradients of `f` at `inputs` against central finite differences.
///
/// The output is reduced to a scalar with fixed random weights, so every output element's
/// gradient path is exercised. Sums are taken in Double; the step `epsilon` suits float32.
public func checkGradients(
  _ inputs: [Tensor], epsilon: Float = 1e-3, rtol: Float = 2e-2, atol: Float = 2e-3,
  sourceLocation: SourceLocation = #_sourceLocation, _ f: ([Tensor]) -> Tensor
) {
  let probe = withoutGradients { f(inputs) }
  let weights = testTensor(probe.shape, seed: 99)
  func objective(_ xs: [Tensor]) -> Double {
    let y = withoutGradients { f(xs) }
    return zip(y.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
  }
  let (_, analytic) = valueWithGradients(at: inputs) { xs in (f(xs) * weights).sum() }
  for (k, input) in inputs.enumerated() {
    var numeric = [Float](repeating: 0, count: input.count)
    for i in 0..<input.count {
      var plus = inputs
      var minus = inputs
      plus[k].withUnsafeMutableBufferPointer { $0[i] += epsilon }
      minus[k].withUnsafeMutableBufferPointer { $0[i] -= epsilon }
      numeric[i] = Float((objective(plus) - objective(minus)) / (2 * Double(epsilon)))
    }
    expectClose(analytic[k].scalars, numeric, rtol: rtol, atol: atol, sourceLocation: sourceLocation)
  }
}
