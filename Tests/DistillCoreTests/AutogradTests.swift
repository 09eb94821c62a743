import DistillTestSupport
import Testing

@testable import DistillCore

@Suite struct AutogradTests {
  @Test func squareSumGradientIsTwiceTheInput() {
    let w = Tensor([1, 2, 3]).requiringGrad()
    (w * w).sum().backward()
    #expect(w.grad == Tensor([2, 4, 6]))
  }

  @Test func gradientsAccumulateAcrossBackwardCalls() {
    let w = Tensor([1, -2]).requiringGrad()
    (w * 3).sum().backward()
    (w * 3).sum().backward()
    #expect(w.grad == Tensor([6, 6]))
    w.zeroGrad()
    #expect(w.grad == nil)
  }

  @Test func sharedSubexpressionSumsBothPaths() {
    let x = Tensor([2]).requiringGrad()
    let y = x.exp()
    (y * y + y).sum().backward()  // d/dx (e^2x + e^x) = 2e^2x + e^x
    expectClose(x.grad!, Tensor([2 * Float(54.59815) + Float(7.389056)]), rtol: 1e-5)
  }

  @Test func noGradientScopeRecordsNothing() {
    let w = Tensor([1, 2]).requiringGrad()
    let y = withoutGradients { w * 2 }
    #expect(!y.requiresGrad)
    #expect((w * 2).requiresGrad)
  }

  @Test func detachedCutsTheGraph() {
    let w = Tensor([1, 2]).requiringGrad()
    let loss = (w * w.detached()).sum()
    loss.backward()
    #expect(w.grad == Tensor([1, 2]))
  }

  @Test func valueWithGradientsReturnsZerosForUnusedParameters() {
    let a = Tensor([1, 2])
    let b = Tensor([5])
    let (value, grads) = valueWithGradients(at: [a, b]) { p in (p[0] * p[0]).sum() }
    #expect(value.item == 5)
    #expect(grads[0] == Tensor([2, 4]))
    #expect(grads[1] == Tensor([0]))
    #expect(!a.requiresGrad)
  }

  @Test func copyOnWriteKeepsCopiesApart() {
    let a = Tensor([1, 2, 3])
    var b = a
    b.withUnsafeMutableBufferPointer { $0[0] = 9 }
    #expect(a.scalars == [1, 2, 3])
    #expect(b.scalars == [9, 2, 3])
  }
}
