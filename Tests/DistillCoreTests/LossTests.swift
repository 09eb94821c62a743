import DistillTestSupport
import Testing

@testable import DistillCore

// Goldens come from PyTorch 2.15 (CPU): the `python3 -c` line above each golden value printed
// it (rounded to 8 significant digits). The pseudo-Huber goldens are computed in float64 so that
// they are free of the cancellation in `sqrt(d^2 + c^2) - c`.

@Suite struct LossTests {
  static let x = Tensor(shape: [2, 3], scalars: [-1.5, -0.4, 0.3, 1.2, 2.5, -2.2])
  static let y = Tensor(shape: [2, 3], scalars: [0.25, -0.5, 1.0, 1.1, -0.75, -2.0])

  @Test func mse() {
    // python3 -c "import torch; x=torch.tensor([[-1.5,-0.4,0.3],[1.2,2.5,-2.2]]); t=torch.tensor([[0.25,-0.5,1.0],[1.1,-0.75,-2.0]]); print((torch.nn.functional.mse_loss(x,t)).flatten().tolist())"
    let expected: [Float] = [2.3625]
    expectClose(Tensor.mseLoss(Self.x, Self.y), Tensor(shape: [], scalars: expected))
    #expect(Tensor.mseLoss(Self.x, Self.y).shape == [])
    checkGradients([Self.x, Self.y]) { Tensor.mseLoss($0[0], $0[1]) }
    checkGradients([testTensor([2, 3, 4, 4], seed: 1), testTensor([2, 3, 4, 4], seed: 2)]) {
      Tensor.mseLoss($0[0], $0[1])
    }
  }

  @Test func l1() {
    // python3 -c "import torch; x=torch.tensor([[-1.5,-0.4,0.3],[1.2,2.5,-2.2]]); t=torch.tensor([[0.25,-0.5,1.0],[1.1,-0.75,-2.0]]); print((torch.nn.functional.l1_loss(x,t)).flatten().tolist())"
    let expected: [Float] = [1.0166665]
    expectClose(Tensor.l1Loss(Self.x, Self.y), Tensor(shape: [], scalars: expected))
    checkGradients([Self.x, Self.y]) { Tensor.l1Loss($0[0], $0[1]) }
    // torch: the gradient of l1_loss is sign(x - y) / n, 0 where x == y.
    let (_, grads) = valueWithGradients(at: [Tensor([1, 2, 3, 4])]) { p in Tensor.l1Loss(p[0], Tensor([0, 2, 5, 4])) }
    #expect(grads[0] == Tensor([0.25, 0, -0.25, 0]))
  }

  @Test func pseudoHuber() {
    // python3 -c "import torch; x=torch.tensor([[-1.5,-0.4,0.3],[1.2,2.5,-2.2]]); t=torch.tensor([[0.25,-0.5,1.0],[1.1,-0.75,-2.0]]); c=0.5; print(((torch.sqrt((x.double()-t.double())**2+c*c)-c).mean()).flatten().tolist())"
    let expected: [Float] = [0.75446951]
    expectClose(Tensor.pseudoHuberLoss(Self.x, Self.y, c: 0.5), Tensor(shape: [], scalars: expected))
    // python3 -c "import torch; x=torch.tensor([[-1.5,-0.4,0.3],[1.2,2.5,-2.2]]); t=torch.tensor([[0.25,-0.5,1.0],[1.1,-0.75,-2.0]]); c=0.00054*(3*64*64)**0.5; print(((torch.sqrt((x.double()-t.double())**2+c*c)-c).mean()).flatten().tolist())"
    let consistency: [Float] = [0.96447188]
    expectClose(Tensor.pseudoHuberLoss(Self.x, Self.y, c: 0.00054 * (3 * 64 * 64 as Float).squareRoot()), Tensor(shape: [], scalars: consistency))
    checkGradients([Self.x, Self.y]) { Tensor.pseudoHuberLoss($0[0], $0[1], c: 0.5) }
    checkGradients([Self.x, Self.y]) { Tensor.pseudoHuberLoss($0[0], $0[1], c: 0.03) }
  }

  @Test func pseudoHuberIsAccurateForTinyResiduals() {
    let a = Tensor([1e-3, -2e-3, 5e-4])
    let zero = Tensor.zeros([3])
    // python3 -c "import torch; a=torch.tensor([1e-3,-2e-3,5e-4]).double(); c=0.06; print(((torch.sqrt(a**2+c*c)-c).mean()).flatten().tolist())"
    let expected: [Float] = [1.4580045e-05]
    expectClose(Tensor.pseudoHuberLoss(a, zero, c: 0.06), Tensor(shape: [], scalars: expected), rtol: 1e-5, atol: 0)
  }

  @Test func pseudoHuberInterpolatesBetweenMSEAndL1() {
    let d = testTensor([4, 5], seed: 3)
    let target = Tensor.zeros([4, 5])
    // Large c: ~ mse / (2c). Small c: ~ l1 - c.
    expectClose(Tensor.pseudoHuberLoss(d, target, c: 100) * 200, Tensor.mseLoss(d, target), rtol: 1e-4)
    expectClose(Tensor.pseudoHuberLoss(d, target, c: 1e-4) + 1e-4, Tensor.l1Loss(d, target), rtol: 1e-3)
  }

  @Test func lossesAreZeroAtTheTarget() {
    #expect(Tensor.mseLoss(Self.x, Self.x).item == 0)
    #expect(Tensor.l1Loss(Self.x, Self.x).item == 0)
    #expect(Tensor.pseudoHuberLoss(Self.x, Self.x, c: 0.1).item == 0)
    let (_, grads) = valueWithGradients(at: [Self.x]) { p in Tensor.pseudoHuberLoss(p[0], Self.x, c: 0.1) }
    #expect(grads[0] == Tensor.zeros([2, 3]))
  }
}
