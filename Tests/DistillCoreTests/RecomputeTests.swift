import DistillTestSupport
import Testing

@testable import DistillCore

/// `Tensor.recomputing`: activation recomputation (torch.utils.checkpoint) as an op.
@Suite struct RecomputeTests {
  /// A small block: a product with a parameter, a nonlinearity, the input used a second time.
  static func block(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Tensor {
    ((x.matmul(w) + b).tanh() * x).silu()
  }

  @Test func gradientsMatchFiniteDifferences() {
    let x = testTensor([3, 4], seed: 1)
    let w = testTensor([4, 4], seed: 2)
    let b = testTensor([4], seed: 3)
    checkGradients([x, w, b]) { p in
      Tensor.recomputing([p[0]], parameters: [p[1], p[2]]) { Self.block($0[0], p[1], p[2]) }
        .square()
    }
  }

  @Test func gradientsAreBitIdenticalToTheBlockRecordedDirectly() {
    let x = testTensor([5, 4], seed: 4)
    let w = testTensor([4, 4], seed: 5)
    let b = testTensor([4], seed: 6)
    // x is also used after the block, so its gradient sums a later use and the block's two.
    func loss(_ p: [Tensor], recompute: Bool) -> Tensor {
      let h = p[0] * 1.5
      let y =
        recompute
        ? Tensor.recomputing([h], parameters: [p[1], p[2]]) { Self.block($0[0], p[1], p[2]) }
        : Self.block(h, p[1], p[2])
      return (Self.block(y, p[1], p[2]) + h).square().sum()
    }
    let (direct, directGrads) = valueWithGradients(at: [x, w, b]) { loss($0, recompute: false) }
    let (again, recomputedGrads) = valueWithGradients(at: [x, w, b]) { loss($0, recompute: true) }
    #expect(direct.scalars == again.scalars)
    for (a, r) in zip(directGrads, recomputedGrads) { #expect(a.scalars == r.scalars) }
  }

  @Test func theIntermediatesAreNotRecorded() {
    let x = testTensor([3, 4], seed: 7).requiringGrad()
    let w = testTensor([4, 4], seed: 8).requiringGrad()
    let b = testTensor([4], seed: 9).requiringGrad()
    let direct = Self.block(x, w, b).sum()
    let recomputed = Tensor.recomputing([x], parameters: [w, b]) { Self.block($0[0], w, b) }.sum()
    // sum <- block output; the block's own nodes (matmul, add, tanh, multiply, silu) are gone.
    #expect(Tensor.topologicalOrder(from: recomputed.node!).count == 5)  // sum, recomputing, x, w, b
    #expect(Tensor.topologicalOrder(from: direct.node!).count > 5)
  }

  @Test func anInputPassedTwiceGetsBothGradients() {
    let x = testTensor([2, 3], seed: 10)
    let (_, direct) = valueWithGradients(at: [x]) { p in (p[0] * p[0].exp()).sum() }
    let (_, recomputed) = valueWithGradients(at: [x]) { p in
      Tensor.recomputing([p[0], p[0]], parameters: []) { $0[0] * $0[1].exp() }.sum()
    }
    #expect(direct[0].scalars == recomputed[0].scalars)
  }

  /// A dropout-like mask drawn inside the block is drawn again, identically, in the backward
  /// pass; the caller's generator ends where the first run left it.
  @Test func randomDrawsReplayIdentically() {
    let x = testTensor([4, 8], seed: 11)
    let w = testTensor([8, 8], seed: 12)
    func dropoutBlock(_ h: Tensor, _ w: Tensor, _ rng: inout RandomGenerator) -> Tensor {
      let keep = Tensor.uniform(h.shape, low: 0, high: 1, using: &rng).scalars.map {
        $0 < 0.7 ? Float(1 / 0.7) : 0
      }
      return h.matmul(w).tanh() * Tensor(shape: h.shape, scalars: keep)
    }
    var directRNG = RandomGenerator(seed: 3)
    var recomputeRNG = RandomGenerator(seed: 3)
    let (direct, directGrads) = valueWithGradients(at: [x, w]) { p in
      dropoutBlock(p[0], p[1], &directRNG).square().sum()
    }
    let (again, recomputedGrads) = valueWithGradients(at: [x, w]) { p in
      Tensor.recomputing([p[0]], parameters: [p[1]], using: &recomputeRNG) {
        dropoutBlock($0[0], p[1], &$1)
      }
      .square().sum()
    }
    #expect(direct.scalars == again.scalars)
    #expect(directGrads[0].scalars == recomputedGrads[0].scalars)
    #expect(directGrads[1].scalars == recomputedGrads[1].scalars)
    #expect(directRNG == recomputeRNG)
    #expect(recomputeRNG.counter > RandomGenerator(seed: 3).counter)
  }

  @Test func withoutGradientsTheBodyRunsOnce() {
    let x = testTensor([2, 2], seed: 13)
    var runs = 0
    let y = withoutGradients {
      Tensor.recomputing([x], parameters: []) {
        runs += 1
        return $0[0].exp()
      }
    }
    #expect(runs == 1)
    #expect(!y.requiresGrad)
    #expect(y.scalars == x.exp().scalars)
  }

  @Test func theModeIsAScope() {
    #expect(ActivationRecompute.current == ActivationRecompute.none)
    withActivationRecompute(.blocks) { #expect(ActivationRecompute.current == .blocks) }
    #expect(ActivationRecompute.current == ActivationRecompute.none)
  }
}
