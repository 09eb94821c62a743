import DistillTestSupport
import Testing

@testable import DistillCore

// Goldens come from PyTorch 2.15 (CPU, float32): the `python3 -c` line above each golden array
// printed it (values rounded to 8 significant digits). Inputs are dyadic, so both sides start
// from identical floats.

@Suite struct LinalgTests {
  /// `arange(count) * scale + offset` with `shape`.
  static func ramp(_ shape: [Int], scale: Float, offset: Float) -> Tensor {
    Tensor.arange(0, Float(shape.reduce(1, *))).reshaped(shape) * scale + offset
  }

  // MARK: matmul

  @Test func matmulOfMatrices() {
    let a = Self.ramp([2, 3], scale: 0.25, offset: -0.5)
    let b = Self.ramp([3, 4], scale: 0.125, offset: -0.625)
    // python3 -c "import torch; a=torch.arange(6.).reshape(2,3)*0.25-0.5; b=torch.arange(12.).reshape(3,4)*0.125-0.625; print((a@b).flatten().tolist())"
    let expected: [Float] = [0.34375, 0.25, 0.15625, 0.0625, 0.0625, 0.25, 0.4375, 0.625]
    expectClose(a.matmul(b), Tensor(shape: [2, 4], scalars: expected))
    checkGradients([testTensor([2, 3], seed: 1), testTensor([3, 4], seed: 2)]) { $0[0].matmul($0[1]) }
    checkGradients([testTensor([5, 1], seed: 3), testTensor([1, 3], seed: 4)]) { $0[0].matmul($0[1]) }
  }

  @Test func matmulFoldsLeadingDimensionsAgainstAMatrix() {
    let a = Self.ramp([2, 3, 4], scale: 0.125, offset: -1.5)
    let b = Self.ramp([4, 2], scale: 0.25, offset: -0.75)
    // python3 -c "import torch; a=torch.arange(24.).reshape(2,3,4)*0.125-1.5; b=torch.arange(8.).reshape(4,2)*0.25-0.75; print((a@b).flatten().tolist())"
    let expected: [Float] = [
      0.3125, -1.0, 0.3125, -0.5, 0.3125, 0.0, 0.3125, 0.5,
      0.3125, 1.0, 0.3125, 1.5,
    ]
    expectClose(a.matmul(b), Tensor(shape: [2, 3, 2], scalars: expected))
    checkGradients([testTensor([2, 3, 4], seed: 5), testTensor([4, 2], seed: 6)]) { $0[0].matmul($0[1]) }
    checkGradients([testTensor([2, 2, 3, 4], seed: 7), testTensor([4, 3], seed: 8)]) { $0[0].matmul($0[1]) }
  }

  @Test func matmulOfBatches() {
    let a = Self.ramp([2, 3, 2, 4], scale: 0.0625, offset: -1.25)
    let b = Self.ramp([2, 3, 4, 3], scale: 0.03125, offset: -0.5)
    // python3 -c "import torch; a=torch.arange(48.).reshape(2,3,2,4)*0.0625-1.25; b=torch.arange(72.).reshape(2,3,4,3)*0.03125-0.5; print((a@b).flatten().tolist())"
    let expected: [Float] = [
      1.6914062, 1.546875, 1.4023438, 1.3320312, 1.21875, 1.1054688, -0.01171875, -0.09375,
      -0.17578125, 0.00390625, -0.046875, -0.09765625, -0.21484375, -0.234375, -0.25390625, 0.17578125,
      0.1875, 0.19921875, 1.0820312, 1.125, 1.1679688, 1.8476562, 1.921875, 1.9960938,
      3.8789062, 3.984375, 4.0898438, 5.0195312, 5.15625, 5.2929688, 8.1757812, 8.34375,
      8.5117188, 9.6914062, 9.890625, 10.089844,
    ]
    expectClose(a.matmul(b), Tensor(shape: [2, 3, 2, 3], scalars: expected))
    checkGradients([testTensor([2, 3, 2, 4], seed: 9), testTensor([2, 3, 4, 3], seed: 10)]) { $0[0].matmul($0[1]) }
    checkGradients([testTensor([3, 2, 4], seed: 11), testTensor([3, 4, 5], seed: 12)]) { $0[0].matmul($0[1]) }
  }

  @Test func matmulWithTheOtherOperandTransposed() {
    for (aShape, bShape) in [([2, 3, 5, 4], [2, 3, 6, 4]), ([3, 4], [5, 4]), ([2, 3, 4], [5, 4])] {
      let a = testTensor(aShape, seed: 13)
      let b = testTensor(bShape, seed: 14)
      expectClose(a.matmul(b, transposeOther: true), a.matmul(b.transposed()))
      checkGradients([a, b]) { $0[0].matmul($0[1], transposeOther: true) }
    }
  }

  @Test func matmulOfTransposedOperands() {
    let a = Self.ramp([3, 2], scale: 0.25, offset: -0.5)
    let b = Self.ramp([4, 3], scale: 0.125, offset: -0.625)
    // python3 -c "import torch; a=torch.arange(6.).reshape(3,2)*0.25-0.5; b=torch.arange(12.).reshape(4,3)*0.125-0.625; print((a.T@b.T).flatten().tolist())"
    let expected: [Float] = [0.125, 0.125, 0.125, 0.125, -0.25, 0.03125, 0.3125, 0.59375]
    expectClose(a.transposed().matmul(b.transposed()), Tensor(shape: [2, 4], scalars: expected))
    checkGradients([testTensor([3, 2], seed: 13), testTensor([4, 3], seed: 14)]) {
      $0[0].transposed().matmul($0[1].transposed())
    }
  }

  @Test func matmulGradientOnlyForOneOperand() {
    let a = testTensor([2, 3], seed: 15).requiringGrad()
    let b = testTensor([3, 4], seed: 16)
    a.matmul(b).sum().backward()
    // d/da sum(a b) = 1 b^T: each row is b's row sums.
    expectClose(a.grad!, b.sum(axes: [1]).unsqueezed(at: 0).expand(to: [2, 3]))
  }

  // MARK: linear

  @Test func linearWithoutBias() {
    let x = Self.ramp([3, 4], scale: 0.125, offset: -0.75)
    let w = Self.ramp([5, 4], scale: 0.0625, offset: -0.5)
    // python3 -c "import torch; x=torch.arange(12.).reshape(3,4)*0.125-0.75; w=torch.arange(20.).reshape(5,4)*0.0625-0.5; print((torch.nn.functional.linear(x,w)).flatten().tolist())"
    let expected: [Float] = [
      0.953125, 0.390625, -0.171875, -0.734375, -1.296875, 0.140625, 0.078125, 0.015625,
      -0.046875, -0.109375, -0.671875, -0.234375, 0.203125, 0.640625, 1.078125,
    ]
    expectClose(Tensor.linear(x, weight: w), Tensor(shape: [3, 5], scalars: expected))
    expectClose(Tensor.linear(x, weight: w), x.matmul(w.transposed()))
    checkGradients([testTensor([3, 4], seed: 17), testTensor([5, 4], seed: 18)]) { Tensor.linear($0[0], weight: $0[1]) }
  }

  @Test func linearWithBias() {
    let x = Self.ramp([3, 4], scale: 0.125, offset: -0.75)
    let w = Self.ramp([5, 4], scale: 0.0625, offset: -0.5)
    let b = Self.ramp([5], scale: 0.5, offset: -1)
    // python3 -c "import torch; x=torch.arange(12.).reshape(3,4)*0.125-0.75; w=torch.arange(20.).reshape(5,4)*0.0625-0.5; b=torch.arange(5.)*0.5-1; print((torch.nn.functional.linear(x,w,b)).flatten().tolist())"
    let expected: [Float] = [
      -0.046875, -0.109375, -0.171875, -0.234375, -0.296875, -0.859375, -0.421875, 0.015625,
      0.453125, 0.890625, -1.671875, -0.734375, 0.203125, 1.140625, 2.078125,
    ]
    expectClose(Tensor.linear(x, weight: w, bias: b), Tensor(shape: [3, 5], scalars: expected))
    checkGradients([testTensor([3, 4], seed: 19), testTensor([5, 4], seed: 20), testTensor([5], seed: 21)]) {
      Tensor.linear($0[0], weight: $0[1], bias: $0[2])
    }
  }

  @Test func linearOverThreeDimensionalInput() {
    let x = Self.ramp([2, 3, 4], scale: 0.125, offset: -1.5)
    let w = Self.ramp([2, 4], scale: 0.25, offset: -0.75)
    let b = Tensor([0.5, -0.25])
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4)*0.125-1.5; w=torch.arange(8.).reshape(2,4)*0.25-0.75; b=torch.tensor([0.5,-0.25]); print((torch.nn.functional.linear(x,w,b)).flatten().tolist())"
    let expected: [Float] = [
      2.625, -3.375, 1.875, -2.125, 1.125, -0.875, 0.375, 0.375,
      -0.375, 1.625, -1.125, 2.875,
    ]
    expectClose(Tensor.linear(x, weight: w, bias: b), Tensor(shape: [2, 3, 2], scalars: expected))
    // python3 -c "import torch; x=torch.arange(24.).reshape(2,3,4)*0.125-1.5; w=torch.arange(8.).reshape(2,4)*0.25-0.75; print((torch.nn.functional.linear(x,w)).flatten().tolist())"
    let noBias: [Float] = [
      2.125, -3.125, 1.375, -1.875, 0.625, -0.625, -0.125, 0.625,
      -0.875, 1.875, -1.625, 3.125,
    ]
    expectClose(Tensor.linear(x, weight: w), Tensor(shape: [2, 3, 2], scalars: noBias))
    checkGradients([testTensor([2, 3, 4], seed: 22), testTensor([2, 4], seed: 23), testTensor([2], seed: 24)]) {
      Tensor.linear($0[0], weight: $0[1], bias: $0[2])
    }
    checkGradients([testTensor([2, 3, 4], seed: 25), testTensor([3, 4], seed: 26)]) { Tensor.linear($0[0], weight: $0[1]) }
  }

  @Test func linearGradientsWhenOnlyTheWeightsLearn() {
    let x = testTensor([4, 3], seed: 27)
    let (_, grads) = valueWithGradients(at: [testTensor([2, 3], seed: 28), Tensor([0.1, 0.2])]) { p in
      Tensor.linear(x, weight: p[0], bias: p[1]).sum()
    }
    expectClose(grads[0], x.sum(axes: [0]).unsqueezed(at: 0).expand(to: [2, 3]), rtol: 1e-5, atol: 1e-5)
    #expect(grads[1] == Tensor([4, 4]))
  }
}
