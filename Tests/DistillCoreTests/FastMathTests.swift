import Foundation
import Testing

@testable import DistillCore

/// The exp kernel behind `exp`, `sigmoid` and `silu`, and the erf behind `gelu` (CKernels):
/// accuracy and edge cases.
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

  @Test func siluAndItsGradientAreAccurate() {
    // The AVX-512 kernel (vscalef, vrcp14 and a Newton step) where the CPU has it.
    let points = (0..<20_000).map { -90 + Float($0) * (180 / 20_000) }
    let x = Tensor(points)
    let (_, grads) = valueWithGradients(at: [x]) { $0[0].silu().sum() }
    for (i, value) in zip(points, x.silu().scalars) {
      let s = 1 / (1 + Foundation.exp(-Double(i)))
      let exact = Double(i) * s
      #expect(abs(Double(value) - exact) <= 4e-7 * abs(exact) + 1e-30, "silu(\(i))")
    }
    for (i, slope) in zip(points, grads[0].scalars) {
      let s = 1 / (1 + Foundation.exp(-Double(i)))
      let exact = s * (1 + Double(i) * (1 - s))
      #expect(abs(Double(slope) - exact) <= 1e-6 * max(abs(exact), 1), "silu'(\(i))")
    }
    let edges = Tensor([.infinity, -.infinity, .nan, -1e30, 1e30, 0]).silu().scalars
    #expect(edges[0] == .infinity)
    #expect(edges[1].isNaN && edges[2].isNaN)  // -inf / (1 + inf), as x / (1 + e^-x) gives
    #expect(edges[3] == 0 && edges[4] == 1e30 && edges[5] == 0)
  }

  /// Exact GELU on the kernel's erf (Abramowitz and Stegun 7.1.26) against the definition in
  /// Double: within 1.5e-7 |x| / 2 of erf's error and a float's rounding, its gradient likewise.
  @Test func geluAndItsGradientAreAccurate() {
    let points = (0..<20_000).map { -12 + Float($0) * (24 / 20_000) }
    let x = Tensor(points)
    let (_, grads) = valueWithGradients(at: [x]) { $0[0].gelu().sum() }
    for (i, value) in zip(points, x.gelu().scalars) {
      let exact = 0.5 * Double(i) * (1 + Foundation.erf(Double(i) / 2.0.squareRoot()))
      #expect(abs(Double(value) - exact) <= 1e-7 * abs(Double(i)) + 3e-7 * abs(exact) + 1e-30, "gelu(\(i))")
    }
    for (i, slope) in zip(points, grads[0].scalars) {
      let u = Double(i)
      let exact = 0.5 * (1 + Foundation.erf(u / 2.0.squareRoot())) + u * Foundation.exp(-u * u / 2) / (2 * Double.pi).squareRoot()
      #expect(abs(Double(slope) - exact) <= 2e-7 * max(abs(u), 1) + 1e-6 * abs(exact), "gelu'(\(i))")
    }
    let edges = Tensor([.infinity, -.infinity, .nan, 0, -1e30, 1e30]).gelu().scalars
    #expect(edges[0] == .infinity && edges[3] == 0 && edges[5] == 1e30)
    #expect(edges[2].isNaN)
    #expect(edges[4] == 0)
  }
}
