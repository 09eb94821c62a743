import DistillTestSupport
import Testing

@testable import DistillCore

// Goldens from torch 2.15 on `wave` inputs (see ConvTests.swift for `wave` / `sineTensor`).

@Suite struct PoolTests {
  @Test func avgPool2dKernel2() {
    // F.avg_pool2d(wave([1,2,4,4],0.37), 2)
    let y = sineTensor([1, 2, 4, 4], 0.37).avgPool2d(kernel: 2)
    let expected: [Float] = [0.5796928, 0.7226491, -0.4912673, -0.7230977, 0.3866862, 0.6997668, -0.2693888, -0.6534239]
    expectClose(y, Tensor(shape: [1, 2, 2, 2], scalars: expected))
  }

  @Test func avgPool2dKernel3Stride2DropsTheRemainder() {
    // F.avg_pool2d(wave([1,1,7,7],0.37), 3, 2)
    let y = sineTensor([1, 1, 7, 7], 0.37).avgPool2d(kernel: 3, stride: 2)
    let expected: [Float] = [
      -0.04043242, 0.1186213, 0.2156286, -0.2147876, -0.1160224, 0.04342978, -0.1532008, -0.2232167, -0.1764762,
    ]
    expectClose(y, Tensor(shape: [1, 1, 3, 3], scalars: expected), rtol: 1e-5, atol: 1e-6)
  }

  @Test func avgPool2dKernel3Stride1() {
    // F.avg_pool2d(wave([1,1,5,5],0.37), 3, 1)
    let y = sineTensor([1, 1, 5, 5], 0.37).avgPool2d(kernel: 3, stride: 1)
    let expected: [Float] = [
      0.1137949, 0.0748634, 0.02579943, -0.1143809, -0.13759, -0.142177, -0.05075045, 0.0009735491, 0.05256573,
    ]
    expectClose(y, Tensor(shape: [1, 1, 3, 3], scalars: expected), rtol: 1e-5, atol: 1e-6)
  }

  @Test func upsampleNearest2x() {
    // F.interpolate(wave([1,2,2,3],0.37), scale_factor=2, mode="nearest")
    let y = sineTensor([1, 2, 2, 3], 0.37).upsampleNearest2x()
    let expected: [Float] = [
      0, 0, 0.3616154, 0.3616154, 0.6742879, 0.6742879, 0, 0, 0.3616154, 0.3616154, 0.6742879, 0.6742879, 0.8956987,
      0.8956987, 0.9958808, 0.9958808, 0.9612752, 0.9612752, 0.8956987, 0.8956987, 0.9958808, 0.9958808, 0.9612752,
      0.9612752, 0.7965655, 0.7965655, 0.5240443, 0.5240443, 0.1805963, 0.1805963, 0.7965655, 0.7965655, 0.5240443,
      0.5240443, 0.1805963, 0.1805963, -0.1872947, -0.1872947, -0.5298361, -0.5298361, -0.8006668, -0.8006668,
      -0.1872947, -0.1872947, -0.5298361, -0.5298361, -0.8006668, -0.8006668,
    ]
    expectClose(y, Tensor(shape: [1, 2, 4, 6], scalars: expected))
  }

  @Test func poolAndUpsampleOnLargeInputsMatchSmallFormulas() {
    // Threaded paths: average of each 2x2 block of an upsampled tensor is the tensor itself.
    let x = testTensor([16, 32, 16, 16], seed: 3)
    expectClose(x.upsampleNearest2x().avgPool2d(kernel: 2), x, rtol: 1e-6, atol: 1e-6)
    let (_, grads) = valueWithGradients(at: [x]) { p in p[0].upsampleNearest2x().avgPool2d(kernel: 2).sum() }
    expectClose(grads[0], Tensor.ones(x.shape), rtol: 1e-6, atol: 1e-6)
  }

  @Test func avgPool2dGradients() {
    let x = testTensor([2, 3, 5, 5], seed: 1)
    checkGradients([x]) { p in p[0].avgPool2d(kernel: 2) }
    checkGradients([x]) { p in p[0].avgPool2d(kernel: 3, stride: 1) }
    checkGradients([x]) { p in p[0].avgPool2d(kernel: 3, stride: 2) }
    checkGradients([x]) { p in p[0].avgPool2d(kernel: (2, 3), stride: (1, 2)) }
  }

  @Test func upsampleNearest2xGradients() {
    let x = testTensor([2, 3, 5, 4], seed: 2)
    checkGradients([x]) { p in p[0].upsampleNearest2x() }
  }
}
