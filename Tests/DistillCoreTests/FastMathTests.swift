import Foundation
import Testing

@testable import DistillCore

/// The exp kernel behind `exp`, `sigmoid` and `silu` (CKernels): accuracy and edge cases.
@Suite struct FastMathTests {
  @Test func expIsAccurateOverTheNormalRange() {
    let points = (0..<200_000).map { -87 + Float($0) * (175.7 / 200_000) }
    let y = Tensor(points).exp().scalars
    var worst: Double = 0
    for (x, value) in zip(points, y) {
      let exact = Foundation.exp(Double(x))
      worst = max(worst, abs(Double(value) - exact) / exact)
    }
    #expect(worst < 2.5e-7)
    // sigmoid and silu use the same kernel
    let s = Tensor([-3, 0, 2]).sigmoid().scalars
    #expect(zip(s, [0.047425873, 0.5, 0.880797]).allSatisfy { abs($0 - $1) < 1e-6 })
  }

  @Test func expEdgeCases() {
    let y = Tensor([0, 89, .infinity, -.infinity, -100, .nan, 1]).exp().scalars
    #expect(y[0] == 1)
    #expect(y[1] == .infinity && y[2] == .infinity)
    #expect(y[3] == 0 && y[4] == 0)
    #expect(y[5].isNaN)
    #expect(abs(y[6] - 2.7182817) <= 2.7182817 * 2.5e-7)
  }
}
