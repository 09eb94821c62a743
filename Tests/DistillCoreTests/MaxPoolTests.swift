import DistillTestSupport
import Testing

@testable import DistillCore

// Goldens from torch 2.15 on `wave` inputs (see ConvTests.swift for `wave` / `sineTensor`).

@Suite struct MaxPoolTests {
  @Test func kernel3Stride2() {
    // F.max_pool2d(wave([1,2,5,5],0.37), 3, 2)
    let y = sineTensor([1, 2, 5, 5], 0.37).maxPool2d(kernel: 3, stride: 2)
    let expected: [Float] = [0.9612752, 0.9958808, 0.9964756, 0.9593748, 0.9016758, 0.9970241, 0.9016758, 0.9970241]
    expectClose(y, Tensor(shape: [1, 2, 2, 2], scalars: expected))
  }

  @Test func ceilModeKeepsThePartialLastWindow() {
    // F.max_pool2d(wave([1,1,6,7],0.37), 3, 2, ceil_mode=True): 3 rows where floor gives 2
    let y = sineTensor([1, 1, 6, 7], 0.37).maxPool2d(kernel: 3, stride: 2, ceilMode: true)
    let expected: [Float] = [
      0.6742879, 0.9958808, 0.9958808, 0.9964756, 0.7924272, 0.8987081, 0.9016758, 0.9970241, 0.9574299,
    ]
    expectClose(y, Tensor(shape: [1, 1, 3, 3], scalars: expected))
    #expect(sineTensor([1, 1, 6, 7], 0.37).maxPool2d(kernel: 3, stride: 2).shape == [1, 1, 2, 3])
  }

  @Test func ceilModeAcceptsAnInputSmallerThanTheKernel() {
    // F.max_pool2d(x, 3, 2, ceil_mode=True) on 2x2 gives the maximum of all four; torch
    // refuses 1x1 (output side 0).
    let x = Tensor(shape: [1, 1, 2, 2], scalars: [0.5, -1, 2, 0.25])
    #expect(x.maxPool2d(kernel: 3, stride: 2, ceilMode: true).scalars == [2])
    #expect(Tensor.maxPool2dOutputSide(2, kernel: 3, stride: 2, ceilMode: true) == 1)
    #expect(Tensor.maxPool2dOutputSide(1, kernel: 3, stride: 2, ceilMode: true) == 0)
    #expect(Tensor.maxPool2dOutputSide(2, kernel: 3, stride: 2, ceilMode: false) == 0)
    #expect(Tensor.maxPool2dOutputSide(8, kernel: 3, stride: 2, ceilMode: true) == 4)
  }

  @Test func tiesGoToTheFirstMaximumAndNaNWins() {
    // torch's CPU kernel: the first maximum in row-major order takes the gradient; a NaN in
    // a window is its output (and takes the gradient).
    let x = Tensor(shape: [1, 2, 3, 3], scalars: [
      1, 5, 2, 5, 0, 5, 3, 4, 5,  // three 5s: the first, at (0, 1), wins
      1, 2, Float.nan, 4, 9, 6, Float.nan, 8, 7,  // the first NaN, at (0, 2), wins
    ]).requiringGrad()
    let y = x.maxPool2d(kernel: 3, stride: 2)
    #expect(y.scalars[0] == 5 && y.scalars[1].isNaN)
    y.sum().backward()
    let grad = x.grad!.scalars
    #expect(grad[0..<9] == [0, 1, 0, 0, 0, 0, 0, 0, 0])
    #expect(grad[9..<18] == [0, 0, 1, 0, 0, 0, 0, 0, 0])
  }

  @Test func kernel2() {
    // F.max_pool2d(wave([1,2,4,6],0.37), 2)
    let y = sineTensor([1, 2, 4, 6], 0.37).maxPool2d(kernel: 2)
    let expected: [Float] = [
      0.7965655, 0.8956987, 0.9958808, 0.6793047, 0.9964756, 0.9593748, 0.5182282, -0.1939844, 0.3742885, 0.9016758,
      0.9970241, 0.7882521,
    ]
    expectClose(y, Tensor(shape: [1, 2, 2, 3], scalars: expected))
  }

  @Test func gradientsReachTheMaximumOnly() {
    let x = testTensor([2, 3, 7, 6], seed: 4)
    checkGradients([x]) { p in p[0].maxPool2d(kernel: 3, stride: 2) }
    checkGradients([x]) { p in p[0].maxPool2d(kernel: 3, stride: 2, ceilMode: true) }
    checkGradients([x]) { p in p[0].maxPool2d(kernel: 2) }
    // Overlapping windows that share a maximum add their gradients there.
    let peak = Tensor(shape: [1, 1, 3, 3], scalars: [-1, -2, -3, -4, 9, -5, -6, -7, -8])
    let (_, grads) = valueWithGradients(at: [peak]) { p in p[0].maxPool2d(kernel: 2, stride: 1).sum() }
    #expect(grads[0].scalars == [0, 0, 0, 0, 4, 0, 0, 0, 0])
  }

  @Test func threadedPlanesMatchPerPlanePooling() {
    // Large enough to be split across cores: each plane must equal its own pooling.
    let x = testTensor([8, 64, 33, 33], seed: 5)
    let y = x.maxPool2d(kernel: 3, stride: 2, ceilMode: true)
    #expect(y.shape == [8, 64, 16, 16])
    for plane in [0, 137, 511] {
      let one = x.reshaped([512, 1, 33, 33]).sliced(axis: 0, plane..<(plane + 1)).maxPool2d(kernel: 3, stride: 2, ceilMode: true)
      #expect(y.reshaped([512, 16, 16]).sliced(axis: 0, plane..<(plane + 1)).scalars == one.scalars)
    }
  }
}
