import DistillTestSupport
import Testing

@testable import DistillCore

// Goldens from torch 2.15 on `wave` inputs (see ConvTests.swift for `wave` / `sineTensor`).

@Suite struct NormTests {
  // MARK: groupNorm

  @Test func groupNormWithAffine() {
    // F.group_norm(wave([2,4,2,2],0.37), 2, wave([4],0.9,0.3), wave([4],1.3,0,0.2))
    let y = Tensor.groupNorm(
      sineTensor([2, 4, 2, 2], 0.37), groups: 2, weight: sineTensor([4], 0.9, 0.3), bias: sineTensor([4], 1.3, 0, 0.2))
    let expected: [Float] = [
      -0.6008566, -0.2671823, 0.02133075, 0.2256336, 1.195886, 1.095177, 0.6158386, -0.1772522, 1.856687, 1.037766,
      0.2752725, -0.3275937, -0.2670869, -0.2787717, -0.2414372, -0.1601366, -0.5740697, -0.3427319, -0.1119834,
      0.086945, 0.9090534, 1.106068, 1.031305, 0.6948835, 1.687332, 1.130479, 0.535566, -0.0168886, -0.228321,
      -0.2706775, -0.2785059, -0.2507468,
    ]
    expectClose(y, Tensor(shape: [2, 4, 2, 2], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func groupNormWithoutAffineOn3DInput() {
    // F.group_norm(wave([2,6,3],0.37), 3)
    let y = Tensor.groupNorm(sineTensor([2, 6, 3], 0.37), groups: 3)
    let expected: [Float] = [
      -1.793916, -0.7930191, 0.07241141, 0.6852431, 0.9625323, 0.8667492, 1.420956, 0.9365001, 0.3259585, -0.3280347,
      -0.9369646, -1.418416, -0.8747524, -0.9629808, -0.6810794, -0.06720255, 0.7955648, 1.790451, -1.942004,
      -0.4830026, 0.5451522, 1.003304, 0.829445, 0.04710518, 1.558904, 0.9038165, 0.2039544, -0.4459591, -0.9579611,
      -1.262755, -1.178828, -0.9640726, -0.5030643, 0.1418017, 0.8832459, 1.620917,
    ]
    expectClose(y, Tensor(shape: [2, 6, 3], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func groupNormLargeOffsetInput() {
    // y = F.group_norm(wave([4,32,8,8],0.37,0,3)+5, 8, wave([32],0.9,0.3), wave([32],1.3,0,0.2))
    let y = Tensor.groupNorm(
      sineTensor([4, 32, 8, 8], 0.37, 0, 3) + 5, groups: 8, weight: sineTensor([32], 0.9, 0.3),
      bias: sineTensor([32], 1.3, 0, 0.2))
    expectSampled(
      y, indices: [0, 3, 100, 2047, 5000, 8191],
      values: [-0.0001062602, 0.3751498, -0.6579525, 0.0753715, 0.05796512, 0.1888624], sum: 71.34185,
      sumOfSquares: 4177.442)
  }

  @Test func groupNormGradients() {
    let x = testTensor([2, 6, 3, 3], seed: 1)
    let w = testTensor([6], seed: 2)
    let b = testTensor([6], seed: 3)
    checkGradients([x, w, b]) { p in Tensor.groupNorm(p[0], groups: 3, weight: p[1], bias: p[2]) }
    checkGradients([x]) { p in Tensor.groupNorm(p[0], groups: 2) }
    checkGradients([x, w]) { p in Tensor.groupNorm(p[0], groups: 6, weight: p[1]) }
  }

  @Test func groupNormGradientsThreaded() {
    // Large enough for the threaded kernels; the composed reference uses the generic ops.
    let x = testTensor([8, 32, 16, 16], seed: 4)
    let w = testTensor([32], seed: 5)
    let b = testTensor([32], seed: 6)
    let seed = testTensor([8, 32, 16, 16], seed: 7)
    let (y, fused) = valueWithGradients(at: [x, w, b]) { p in
      (Tensor.groupNorm(p[0], groups: 8, weight: p[1], bias: p[2]) * seed).sum()
    }
    let (yRef, reference) = valueWithGradients(at: [x, w, b]) { p in
      let g = p[0].reshaped([8, 8, 4 * 256])
      let centered = g - g.mean(axes: [2], keepDims: true)
      let normalized = (centered * (centered.square().mean(axes: [2], keepDims: true) + 1e-5).rsqrt()).reshaped(x.shape)
      return ((normalized * p[1].reshaped([1, 32, 1, 1]) + p[2].reshaped([1, 32, 1, 1])) * seed).sum()
    }
    expectClose(y, yRef, rtol: 1e-3, atol: 1e-2)
    for (a, b) in zip(fused, reference) { expectClose(a, b, rtol: 1e-3, atol: 1e-4) }
  }

  // MARK: layerNorm

  @Test func layerNormWithAffine() {
    // F.layer_norm(wave([3,8],0.37), [8], wave([8],0.9,0.3), wave([8],1.3,0,0.2))
    let y = Tensor.layerNorm(
      sineTensor([3, 8], 0.37), normalizedShape: [8], weight: sineTensor([8], 0.9, 0.3), bias: sineTensor([8], 1.3, 0, 0.2))
    let expected: [Float] = [
      -0.6008567, -0.6499528, 0.165407, -0.02980621, -0.916949, -0.9215321, -0.05029149, -0.05984364, 0.6003415,
      1.201905, 0.2752725, -0.2079643, 0.4546076, 1.039883, 0.60509, 0.01396383, -0.5740697, -0.888228, -0.2240014,
      -0.09603431, -0.7052907, -0.9331722, -0.2957653, 0.2316746,
    ]
    expectClose(y, Tensor(shape: [3, 8], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func layerNormOverTwoDimensionsWithoutAffine() {
    // F.layer_norm(wave([2,3,4],0.37), [3,4])
    let y = Tensor.layerNorm(sineTensor([2, 3, 4], 0.37), normalizedShape: [3, 4])
    let expected: [Float] = [
      -0.5622255, 0.06783851, 0.6126263, 0.9984034, 1.172957, 1.112661, 0.8256778, 0.350848, -0.2475619, -0.88856,
      -1.48539, -1.957275, -1.33423, -1.375746, -1.243099, -0.9542438, -0.5482752, -0.08013896, 0.3868047, 0.7893572,
      1.073035, 1.199443, 1.151474, 0.935619,
    ]
    expectClose(y, Tensor(shape: [2, 3, 4], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func layerNormOffsetInputKeepsPrecision() {
    // F.layer_norm(wave([2,6],0.37)+100, [6], eps=1e-6)
    let y = Tensor.layerNorm(sineTensor([2, 6], 0.37) + 100, eps: 1e-6)
    let expected: [Float] = [
      -1.793967, -0.7930318, 0.07241248, 0.6852683, 0.9625643, 0.8667746, 1.420962, 0.9365121, 0.325955, -0.3280437,
      -0.9369867, -1.418439,
    ]
    // Adding 100 in float32 already rounds the input at ~4e-6; torch sees the same rounding.
    expectClose(y, Tensor(shape: [2, 6], scalars: expected), rtol: 1e-4, atol: 1e-4)
  }

  @Test func layerNormGradients() {
    let x = testTensor([2, 3, 5], seed: 1)
    let w = testTensor([5], seed: 2)
    let b = testTensor([5], seed: 3)
    checkGradients([x, w, b]) { p in Tensor.layerNorm(p[0], weight: p[1], bias: p[2]) }
    checkGradients([x]) { p in Tensor.layerNorm(p[0], normalizedShape: [3, 5]) }
    let w2 = testTensor([3, 5], seed: 4)
    checkGradients([x, w2]) { p in Tensor.layerNorm(p[0], normalizedShape: [3, 5], weight: p[1]) }
    checkGradients([x, b]) { p in Tensor.layerNorm(p[0], bias: p[1]) }
  }

  @Test func layerNormGradientsThreaded() {
    let x = testTensor([512, 256], seed: 5)
    let w = testTensor([256], seed: 6)
    let b = testTensor([256], seed: 7)
    let seed = testTensor([512, 256], seed: 8)
    let (y, fused) = valueWithGradients(at: [x, w, b]) { p in
      (Tensor.layerNorm(p[0], weight: p[1], bias: p[2]) * seed).sum()
    }
    let (yRef, reference) = valueWithGradients(at: [x, w, b]) { p in
      let centered = p[0] - p[0].mean(axes: [1], keepDims: true)
      let normalized = centered * (centered.square().mean(axes: [1], keepDims: true) + 1e-5).rsqrt()
      return ((normalized * p[1] + p[2]) * seed).sum()
    }
    expectClose(y, yRef, rtol: 1e-3, atol: 1e-2)
    for (a, b) in zip(fused, reference) { expectClose(a, b, rtol: 1e-3, atol: 1e-4) }
  }
}
