import DistillTestSupport
import Testing

@testable import DistillCore

/// ``Tensor/groupNormSiLU(_:groups:weight:bias:eps:)``: gradients against finite differences,
/// and values and gradients identical to the bit with the two ops it fuses.
@Suite struct GroupNormSiLUTests {
  @Test func gradientsMatchFiniteDifferences() {
    let x = testTensor([2, 6, 3, 3], seed: 11)
    let w = testTensor([6], seed: 12)
    let b = testTensor([6], seed: 13)
    checkGradients([x, w, b]) { p in Tensor.groupNormSiLU(p[0], groups: 3, weight: p[1], bias: p[2])
    }
    checkGradients([x]) { p in Tensor.groupNormSiLU(p[0], groups: 2) }
    checkGradients([x, w]) { p in Tensor.groupNormSiLU(p[0], groups: 6, weight: p[1]) }
  }

  /// Small and threaded sizes; the upstream gradient is not all ones.
  @Test(arguments: [[2, 6, 3, 3], [8, 64, 16, 16]])
  func equalsGroupNormThenSiLUBitForBit(shape: [Int]) {
    let x = testTensor(shape, seed: 14)
    let w = testTensor([shape[1]], seed: 15)
    let b = testTensor([shape[1]], seed: 16)
    let upstream = testTensor(shape, seed: 17)
    let (fused, fusedGrads) = valueWithGradients(at: [x, w, b]) { p in
      (Tensor.groupNormSiLU(p[0], groups: 2, weight: p[1], bias: p[2], eps: 1e-6) * upstream).sum()
    }
    let (composed, composedGrads) = valueWithGradients(at: [x, w, b]) { p in
      (Tensor.groupNorm(p[0], groups: 2, weight: p[1], bias: p[2], eps: 1e-6).silu() * upstream)
        .sum()
    }
    #expect(fused.scalars == composed.scalars)
    for (a, c) in zip(fusedGrads, composedGrads) { #expect(a.scalars == c.scalars) }
    let forward = Tensor.groupNormSiLU(x, groups: 2, weight: w, bias: b, eps: 1e-6)
    #expect(
      forward.scalars
        == Tensor.groupNorm(x, groups: 2, weight: w, bias: b, eps: 1e-6).silu().scalars)
  }
}
