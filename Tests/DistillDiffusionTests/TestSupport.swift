import Foundation
import Testing

@testable import DistillDiffusion

/// Whether `actual` and `expected` agree elementwise within `atol + rtol·|expected|`; records
/// a failure naming the worst element otherwise.
@discardableResult
func expectClose(
  _ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6,
  sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
  guard actual.count == expected.count else {
    Issue.record("\(actual.count) elements, expected \(expected.count)", sourceLocation: sourceLocation)
    return false
  }
  var worst: (index: Int, excess: Float)? = nil
  for i in actual.indices {
    let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
    if !(excess <= 0), worst == nil || excess > worst!.excess || excess.isNaN { worst = (i, excess) }
  }
  if let worst {
    Issue.record(
      "element \(worst.index): \(actual[worst.index]) vs expected \(expected[worst.index])",
      sourceLocation: sourceLocation)
    return false
  }
  return true
}

@discardableResult
func expectClose(
  _ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6,
  sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
  guard actual.shape == expected.shape else {
    Issue.record("shape \(actual.shape) differs from \(expected.shape)", sourceLocation: sourceLocation)
    return false
  }
  return expectClose(actual.scalars, expected.scalars, rtol: rtol, atol: atol, sourceLocation: sourceLocation)
}

/// A deterministic pseudo-random tensor (an LCG), uniform in `range`.
func testTensor(_ shape: [Int], seed: UInt64 = 1, range: ClosedRange<Float> = -1...1) -> Tensor {
  var state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
  let values = (0..<shape.reduce(1, *)).map { _ -> Float in
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return range.lowerBound + Float(state >> 40) / Float(1 << 24) * (range.upperBound - range.lowerBound)
  }
  return Tensor(shape: shape, scalars: values)
}

/// A `[2, 1, 2, 2]` tensor of `f(i)` for `i` in `0..<8`, to mirror inputs built in Python.
func formulaTensor(_ f: (Double) -> Double) -> Tensor {
  Tensor(shape: [2, 1, 2, 2], scalars: (0..<8).map { Float(f(Double($0))) })
}
