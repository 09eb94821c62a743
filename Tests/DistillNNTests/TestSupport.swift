import Testing

@testable import DistillNN

// Copied from DistillCoreTests/TestSupport.swift (test targets do not depend on each other).

/// Whether `actual` and `expected` agree elementwise within `atol + rtol * |expected|`;
/// records a failure naming the worst element otherwise.
@discardableResult
func expectClose(
  _ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6,
  _ label: String = "", sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
  guard actual.count == expected.count else {
    Issue.record("\(label): \(actual.count) elements, expected \(expected.count)", sourceLocation: sourceLocation)
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
      "\(label) element \(worst.index): \(actual[worst.index]) vs expected \(expected[worst.index])",
      sourceLocation: sourceLocation)
    return false
  }
  return true
}

/// A deterministic pseudo-random tensor for tests (a simple LCG; independent of the RNG under test).
func testTensor(_ shape: [Int], seed: UInt64 = 1, range: ClosedRange<Float> = -1...1) -> Tensor {
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
