import Foundation
import DistillTestSupport
import Testing

@testable import DistillCore

// Goldens below come from torch 2.15 (CPU, float32) on inputs built by `wave`, which
// `sineTensor` reproduces:
//
//   import torch, torch.nn.functional as F, math
//   def wave(shape, f, p=0.0, s=1.0):
//       n = math.prod(shape)
//       return (s * torch.sin(torch.arange(n, dtype=torch.float64) * f + p)).float().reshape(shape)

/// `scale * sin(frequency * i + phase)` for element `i`, computed in Double and rounded (torch's `wave`).
func sineTensor(_ shape: [Int], _ frequency: Double, _ phase: Double = 0, _ scale: Double = 1) -> Tensor {
  let n = shape.reduce(1, *)
  return Tensor(shape: shape, scalars: (0..<n).map { Float(scale * sin(Double($0) * frequency + phase)) })
}

/// Checks the elements at `indices`, the sum and the sum of squares of a large result
/// against torch's (`t.flatten()[idx]`, `t.double().sum()`, `(t.double()**2).sum()`).
func expectSampled(
  _ actual: Tensor, indices: [Int], values: [Float], sum: Double, sumOfSquares: Double, rtol: Float = 1e-4,
  atol: Float = 1e-5, sourceLocation: SourceLocation = #_sourceLocation
) {
  let scalars = actual.scalars
  expectClose(indices.map { scalars[$0] }, values, rtol: rtol, atol: atol, sourceLocation: sourceLocation)
  let total = scalars.reduce(0.0) { $0 + Double($1) }
  let squares = scalars.reduce(0.0) { $0 + Double($1) * Double($1) }
  // Cancelling sums are compared on the scale of the elements.
  #expect(Swift.abs(total - sum) <= 1e-4 * Swift.max(Swift.abs(sum), sumOfSquares.squareRoot()), "sum \(total) vs \(sum)", sourceLocation: sourceLocation)
  #expect(Swift.abs(squares - sumOfSquares) <= 1e-4 * sumOfSquares, "sum of squares \(squares) vs \(sumOfSquares)", sourceLocation: sourceLocation)
}

@Suite struct ConvTests {
  // MARK: conv2d forward

  @Test func conv2dStride1NoPaddingWithBias() {
    // F.conv2d(wave([2,2,5,5],0.37), wave([3,2,3,3],0.23,0.5,0.5), wave([3],1.1,0,0.3))
    let y = Tensor.conv2d(
      sineTensor([2, 2, 5, 5], 0.37), weight: sineTensor([3, 2, 3, 3], 0.23, 0.5, 0.5), bias: sineTensor([3], 1.1, 0, 0.3))
    let expected: [Float] = [
      0.07240124, -0.7923834, -1.549923, -2.305769, -1.937923, -1.307788, 1.198493, 1.860528, 2.27075, -1.624625,
      -1.474093, -1.087862, 0.8485789, 1.460724, 1.911353, 1.838994, 1.35106, 0.7164509, 2.219707, 2.921422, 3.260564,
      1.918695, 0.8877227, -0.2305712, -2.658468, -2.791931, -2.514691, 0.8824071, 0.02377564, -0.8380739, -2.366928,
      -2.293313, -1.909309, 0.4221973, 1.240254, 1.890448, -1.531513, -1.622958, -1.458556, 0.1964251, 0.8852861,
      1.490515, 2.105337, 1.817095, 1.319103, 1.308835, 2.266526, 2.950282, 2.686321, 1.866475, 0.8268371, -2.170696,
      -2.676505, -2.787233,
    ]
    expectClose(y, Tensor(shape: [2, 3, 3, 3], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func conv2dStride2Padding1NoBias() {
    // F.conv2d(wave([1,2,5,5],0.37), wave([3,2,3,3],0.23,0.5,0.5), stride=2, padding=1)
    let y = Tensor.conv2d(sineTensor([1, 2, 5, 5], 0.37), weight: sineTensor([3, 2, 3, 3], 0.23, 0.5, 0.5), stride: 2, padding: 1)
    let expected: [Float] = [
      1.755227, 2.713892, 1.246242, -1.480159, -1.937923, -0.4643127, 1.135131, 2.024058, 0.9586226, -0.8214542,
      -2.290817, -1.710567, -0.07725635, 1.193362, 1.151712, -0.4767369, -2.19052, -1.939853, -0.8653593, -0.2322874,
      0.6067871, 1.563849, 0.6451735, -0.7833176, -0.6186894, 0.3488964, 1.142789,
    ]
    expectClose(y, Tensor(shape: [1, 3, 3, 3], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func conv2dSeparateStridesAndPaddings() {
    // F.conv2d(wave([1,2,5,6],0.37), wave([2,2,3,2],0.23,0.5,0.5), wave([2],1.1,0,0.3), stride=(1,2), padding=(1,0))
    let y = Tensor.conv2d(
      sineTensor([1, 2, 5, 6], 0.37), weight: sineTensor([2, 2, 3, 2], 0.23, 0.5, 0.5), bias: sineTensor([2], 1.1, 0, 0.3),
      stride: (1, 2), padding: (1, 0))
    let expected: [Float] = [
      0.3897524, 0.5752265, 0.459821, -0.6308898, -0.3120943, 0.1699461, 0.5630941, 0.6617085, 0.4142076, -0.04994978,
      -0.4879803, -0.6707664, 0.4975052, 0.6205664, 0.4190324, -0.07355694, -0.3361186, -0.2830219, 0.931471, 0.8192356,
      0.4183357, -0.06153272, -0.3693685, -0.344154, 0.000921905, 0.4853628, 0.8557757, -0.1327416, -0.3103069,
      -0.1857149,
    ]
    expectClose(y, Tensor(shape: [1, 2, 5, 3], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func conv2dPointwiseFastPath() {
    // F.conv2d(wave([2,3,2,3],0.37), wave([2,3,1,1],0.23,0.5,0.5), wave([2],1.1,0,0.3))
    let x = sineTensor([2, 3, 2, 3], 0.37)
    let w = sineTensor([2, 3, 1, 1], 0.23, 0.5, 0.5)
    let y = Tensor.conv2d(x, weight: w, bias: sineTensor([2], 1.1, 0, 0.3))
    let expected: [Float] = [
      -0.1288917, -0.1462276, -0.1437722, -0.121858, -0.0834508, -0.033749, 0.1810693, 0.1982072, 0.2247049, 0.2569761,
      0.290653, 0.3211776, -0.1463644, -0.1435392, -0.1212868, -0.08261868, -0.03276853, 0.02151668, 0.19862, 0.2252597,
      0.2575978, 0.2912574, 0.321683, 0.3447564,
    ]
    expectClose(y, Tensor(shape: [2, 2, 2, 3], scalars: expected), rtol: 1e-5, atol: 1e-6)
    // Padded 1x1 goes through im2col and must agree on the interior.
    let padded = Tensor.conv2d(x, weight: w, padding: 1).sliced(axis: 2, 1..<3).sliced(axis: 3, 1..<4)
    expectClose(padded, Tensor.conv2d(x, weight: w), rtol: 1e-5, atol: 1e-6)
  }

  @Test func conv2dLargeBatchAgreesWithTorch() {
    // y = F.conv2d(wave([16,32,16,16],0.37), wave([32,32,3,3],0.23,0.5,0.1), wave([32],1.1,0,0.3), padding=1)
    // y.flatten()[idx], y.double().sum(), (y.double()**2).sum()
    let y = Tensor.conv2d(
      sineTensor([16, 32, 16, 16], 0.37), weight: sineTensor([32, 32, 3, 3], 0.23, 0.5, 0.1),
      bias: sineTensor([32], 1.1, 0, 0.3), padding: 1)
    #expect(y.shape == [16, 32, 16, 16])
    expectSampled(
      y, indices: [0, 1, 77, 1000, 4095, 12345, 40000, 65535],
      values: [0.03543139, 0.09232054, -0.1806303, 0.05379474, -0.1627618, -0.1965245, -0.09623551, 0.1990601],
      sum: 2173.294, sumOfSquares: 7690.957)
  }

  @Test func conv2dStride2OddSizeAgreesWithTorch() {
    // y = F.conv2d(wave([8,16,15,15],0.37), wave([16,16,3,3],0.23,0.5,0.1), stride=2, padding=1)
    let y = Tensor.conv2d(
      sineTensor([8, 16, 15, 15], 0.37), weight: sineTensor([16, 16, 3, 3], 0.23, 0.5, 0.1), stride: 2, padding: 1)
    #expect(y.shape == [8, 16, 8, 8])
    expectSampled(
      y, indices: [0, 5, 99, 500, 1234, 2047],
      values: [-0.5271865, 0.5189046, 0.2470346, 0.04768467, -0.2354042, 0.3927386], sum: -4.013329,
      sumOfSquares: 1681.831)
  }

  // MARK: convTranspose2d forward

  @Test func convTranspose2dStride1WithBias() {
    // F.conv_transpose2d(wave([1,2,3,3],0.37), wave([2,2,3,3],0.23,0.5,0.5), wave([2],1.1,0,0.3))
    let y = Tensor.convTranspose2d(
      sineTensor([1, 2, 3, 3], 0.37), weight: sineTensor([2, 2, 3, 3], 0.23, 0.5, 0.5), bias: sineTensor([2], 1.1, 0, 0.3))
    let expected: [Float] = [
      0.09340208, 0.4433947, 1.02983, 1.013584, 0.6468201, 0.7713621, 1.955104, 3.349593, 2.533838, 1.332566, 1.357426,
      2.772537, 3.903173, 2.319159, 0.9251949, 1.19445, 2.007344, 2.258461, 1.120011, 0.346446, 0.4664485, 0.648683,
      0.5365871, 0.2308928, 0.06554232, 0.2285947, 0.1983243, 0.110248, -0.04933429, -0.005376607, 0.2261194,
      -0.1640368, -0.9310883, -1.043584, -0.6096822, -0.2324444, -1.335785, -2.854903, -2.201926, -1.058081,
      -0.8725071, -2.045469, -3.007443, -1.75108, -0.5799351, -0.3460143, -0.7369282, -0.8160698, -0.193839, 0.1837759,
    ]
    expectClose(y, Tensor(shape: [1, 2, 5, 5], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func convTranspose2dStride2Padding1OutputPadding1() {
    // F.conv_transpose2d(wave([1,2,3,3],0.37), wave([2,1,3,3],0.23,0.5,0.5), stride=2, padding=1, output_padding=1)
    let y = Tensor.convTranspose2d(
      sineTensor([1, 2, 3, 3], 0.37), weight: sineTensor([2, 1, 3, 3], 0.23, 0.5, 0.5), stride: 2, padding: 1,
      outputPadding: 1)
    let expected: [Float] = [
      0.03197132, 0.2503474, 0.2691992, 0.6853549, 0.4699923, 0.5549457, 0.2180246, 0.7359905, 0.5487714, 1.334948,
      0.8052447, 0.9684266, 0.6071741, 1.23077, 0.6621777, 1.267357, 0.6275588, 0.7231321, 0.9527318, 1.934214,
      0.971271, 1.853415, 0.8583534, 0.8457453, 0.5080026, 0.8442043, 0.3196907, 0.4417351, 0.08811014, 0.0881523,
      0.630081, 0.9836433, 0.3778886, 0.4413729, 0.0745507, 0.06162331,
    ]
    expectClose(y, Tensor(shape: [1, 1, 6, 6], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  @Test func convTranspose2dKernel4Stride2WithBias() {
    // F.conv_transpose2d(wave([1,1,2,2],0.37), wave([1,2,4,4],0.23,0.5,0.5), wave([2],1.1,0,0.3), stride=2, padding=1)
    let y = Tensor.convTranspose2d(
      sineTensor([1, 1, 2, 2], 0.37), weight: sineTensor([1, 2, 4, 4], 0.23, 0.5, 0.5), bias: sineTensor([2], 1.1, 0, 0.3),
      stride: 2, padding: 1)
    let expected: [Float] = [
      0, 0.1787559, 0.1802409, 0.1722331, 0.2248311, 0.6207999, 0.7094631, 0.4274428, 0.336087, 0.7425634, 0.6740266,
      0.3277647, 0.1823855, 0.4347032, 0.2798188, 0.1500242, 0.2673622, 0.09996778, 0.1199562, 0.147708, -0.05448478,
      -0.5018029, -0.4991314, -0.1439579, -0.007499188, -0.2599764, -0.1172314, 0.1334796, 0.256176, 0.2167782,
      0.3920715, 0.3549376,
    ]
    expectClose(y, Tensor(shape: [1, 2, 4, 4], scalars: expected), rtol: 1e-5, atol: 1e-5)
  }

  // MARK: Backward against torch (large enough for the threaded paths)

  @Test func conv2dBackwardAgreesWithTorch() {
    // x = wave([16,32,16,16],0.37).requires_grad_(); w = wave([32,32,3,3],0.23,0.5,0.1).requires_grad_()
    // b = wave([32],1.1,0,0.3).requires_grad_()
    // y = F.conv2d(x, w, b, stride=2, padding=1); y.backward(wave(list(y.shape), 0.13, 0.2))
    let (_, grads) = valueWithGradients(
      at: [sineTensor([16, 32, 16, 16], 0.37), sineTensor([32, 32, 3, 3], 0.23, 0.5, 0.1), sineTensor([32], 1.1, 0, 0.3)]
    ) { p in
      let y = Tensor.conv2d(p[0], weight: p[1], bias: p[2], stride: 2, padding: 1)
      return (y * sineTensor(y.shape, 0.13, 0.2)).sum()
    }
    expectSampled(
      grads[0], indices: [0, 1, 777, 4095, 60000, 131071],
      values: [-0.03730914, -0.06251955, 0.01697836, 0.07753424, 0.07630791, 0.09197081], sum: -0.200318,
      sumOfSquares: 2840.244)
    expectSampled(
      grads[1], indices: [0, 1, 100, 5000, 9215], values: [2.536655, -1.24191, -2.734014, 12.40047, 8.554136],
      sum: -92.28187, sumOfSquares: 417346.1)
    expectClose([grads[2].scalars[0], grads[2].scalars[31]], [0.1126229, -0.2361481], rtol: 1e-4, atol: 1e-5)
  }

  @Test func conv2dStride1BackwardAgreesWithTorch() {
    // 32x32 planes: the direct kernels of CKernels/conv.c for the output, the input gradient
    // (a convolution of the output gradient) and the weight gradient.
    // x = wave([4,8,32,32],0.37).requires_grad_(); w = wave([16,8,3,3],0.23,0.5,0.1).requires_grad_()
    // b = wave([16],1.1,0,0.3).requires_grad_()
    // y = F.conv2d(x, w, b, stride=1, padding=1); y.backward(wave(list(y.shape), 0.13, 0.2))
    let (_, grads) = valueWithGradients(
      at: [sineTensor([4, 8, 32, 32], 0.37), sineTensor([16, 8, 3, 3], 0.23, 0.5, 0.1), sineTensor([16], 1.1, 0, 0.3)]
    ) { p in
      let y = Tensor.conv2d(p[0], weight: p[1], bias: p[2], padding: 1)
      expectSampled(
        y.detached(), indices: [0, 1, 1023, 5000, 40000, 65535],
        values: [-1.026388, -1.251042, 1.086256, -1.214292, 0.6297687, -0.5933893], sum: 1273.477, sumOfSquares: 68928.11)
      return (y * sineTensor(y.shape, 0.13, 0.2)).sum()
    }
    expectSampled(
      grads[0], indices: [0, 1, 777, 4095, 20000, 32767],
      values: [0.0595824, 0.0749454, 0.2193761, 0.03511019, 0.06987525, 0.07086427], sum: 6.450953, sumOfSquares: 386.0632)
    expectSampled(
      grads[1], indices: [0, 1, 100, 500, 1151], values: [0.312088, 0.6974463, -0.9835646, 2.52622, 0.2424762],
      sum: -0.06830772, sumOfSquares: 1700.776)
    expectClose([grads[2].scalars[0], grads[2].scalars[15]], [19.22049, -20.57562], rtol: 1e-4, atol: 1e-5)
  }

  /// Shapes that take each route of CKernels' convolution: direct (rows of whole 16-pixel
  /// vectors, or vectors over several rows as wide as the input's; the weight gradient for
  /// 3x3 on rows of 16 with few outputs), the implicit product (other widths, strides,
  /// kernels), and the adjoint convolution for stride-1 input gradients.
  @Test(arguments: [
    ([1, 2, 2, 16], [3, 2, 3, 3], 1, 1),  // direct forward, input gradient and weight gradient
    ([2, 3, 2, 16], [9, 3, 3, 3], 1, 1),  // direct forward; weight gradient by the product
    ([1, 2, 4, 8], [3, 2, 3, 3], 1, 1),   // direct forward over 8-pixel rows, two per vector
    ([1, 2, 6, 10], [3, 2, 3, 3], 1, 0),  // 4x8 output of a 6x10 input: implicit product
    ([1, 2, 6, 10], [2, 2, 3, 2], 1, 0),  // unpadded columns, 3x2 kernel: 4x9 output, patch route
    ([1, 2, 5, 16], [2, 2, 3, 3], 2, 1),  // stride 2: patch route for the input gradient
    ([1, 3, 2, 16], [4, 3, 1, 1], 1, 0),  // pointwise, direct
  ])
  func conv2dRoutesHaveExactGradients(xShape: [Int], wShape: [Int], stride: Int, padding: Int) {
    checkGradients([testTensor(xShape, seed: 31), testTensor(wShape, seed: 32)]) {
      Tensor.conv2d($0[0], weight: $0[1], stride: stride, padding: padding)
    }
  }

  /// Small planes whose 32-column panels span several samples (3x3, 4x4, 7x7: AlexNet's
  /// and a UNet's inner levels), gathered across rows where input rows are as wide as output
  /// rows and within rows where they are not, with depths past one packed block: forward,
  /// input gradient and weight gradient against a Double loop over the definition.
  @Test(arguments: [
    ([5, 6, 3, 3], [7, 6, 3, 3], 1),     // 9-pixel planes, a panel spans 4-5 samples
    ([3, 40, 3, 3], [10, 40, 3, 3], 1),  // depth 360: two packed blocks
    ([2, 16, 3, 3], [40, 16, 3, 3], 1),  // the input gradient's depth 360 splits a channel's taps
    ([6, 5, 4, 4], [9, 5, 3, 3], 1),     // 16-pixel planes (a UNet at 4x4)
    ([3, 4, 7, 7], [5, 4, 5, 5], 2),     // AlexNet's second layer, 49-pixel planes
    ([4, 3, 5, 7], [3, 3, 3, 3], 1),     // 35-pixel planes, rows of 7
    ([3, 2, 5, 9], [4, 2, 3, 3], 0),     // unpadded: 3x7 output, gathered within rows
  ])
  func smallPlanesSpanningSamplesAgreeWithTheDefinition(xShape: [Int], wShape: [Int], padding: Int) {
    expectAgreementWithTheDefinition(xShape: xShape, wShape: wShape, padding: padding)
  }

  /// Direct convolutions (conv.c) whose input channels span several channel blocks of 8 (the
  /// sums of the blocks before the last kept aside), whose output channels end in a partial
  /// strip, with more strips than one block holds, and on 32 tiles with strips large enough
  /// that the block is raised to 4 strips; the input gradient is the direct convolution of the
  /// flipped weight.
  @Test(arguments: [
    ([1, 20, 32, 32], [19, 20, 3, 3], 1),  // 3 channel blocks (the last of 4), 3 strips (the last of 3)
    ([1, 256, 16, 16], [60, 256, 3, 3], 1),  // 8 strips of 72 KiB, 7 to a 512 KiB block: two blocks
    ([1, 480, 32, 32], [40, 480, 3, 3], 1),  // 32 tiles, strips of 135 KiB: blocks of 4, not 3
    ([2, 12, 8, 16], [9, 12, 3, 3], 1),  // rows of 16, two samples, a strip of 1 output channel
  ])
  func directBlocksAgreeWithTheDefinition(xShape: [Int], wShape: [Int], padding: Int) {
    let geometry = ConvGeometry(
      conv2d: xShape, weight: Tensor.zeros(wShape), bias: nil, stride: (1, 1), padding: (padding, padding))
    #expect(geometry.runsDirect == GemmKernel.isOwn)
    // float32 sums of up to 4320 products of unit-scale values: absolute error grows as the
    // depth's square root.
    let depth = Float(wShape[1] * wShape[2] * wShape[3])
    expectAgreementWithTheDefinition(xShape: xShape, wShape: wShape, padding: padding, atol: 1e-5 * depth.squareRoot())
  }

  /// Forward, input gradient and weight gradient against a Double loop over the definition.
  func expectAgreementWithTheDefinition(xShape: [Int], wShape: [Int], padding: Int, atol: Float = 1e-5) {
    let x = testTensor(xShape, seed: 41)
    let w = testTensor(wShape, seed: 42)
    let (n, c, h, wd) = (xShape[0], xShape[1], xShape[2], xShape[3])
    let (o, k) = (wShape[0], wShape[2])
    let (ho, wo) = (h + 2 * padding - k + 1, wd + 2 * padding - k + 1)
    let seed = testTensor([n, o, ho, wo], seed: 43)
    let (xs, ws, gs) = (x.scalars.map(Double.init), w.scalars.map(Double.init), seed.scalars.map(Double.init))
    var y = [Double](repeating: 0, count: n * o * ho * wo)
    var dx = [Double](repeating: 0, count: xs.count)
    var dw = [Double](repeating: 0, count: ws.count)
    for s in 0..<n {
      for oc in 0..<o {
        for oy in 0..<ho {
          for ox in 0..<wo {
            let out = ((s * o + oc) * ho + oy) * wo + ox
            for ci in 0..<c {
              for ky in 0..<k {
                for kx in 0..<k {
                  let (iy, ix) = (oy - padding + ky, ox - padding + kx)
                  guard iy >= 0 && iy < h && ix >= 0 && ix < wd else { continue }
                  let (xi, wi) = (((s * c + ci) * h + iy) * wd + ix, ((oc * c + ci) * k + ky) * k + kx)
                  y[out] += xs[xi] * ws[wi]
                  dx[xi] += gs[out] * ws[wi]
                  dw[wi] += gs[out] * xs[xi]
                }
              }
            }
          }
        }
      }
    }
    let (value, grads) = valueWithGradients(at: [x, w]) { p in
      let out = Tensor.conv2d(p[0], weight: p[1], padding: padding)
      expectClose(out.detached(), Tensor(shape: [n, o, ho, wo], scalars: y.map(Float.init)), rtol: 1e-4, atol: atol)
      return (out * seed).sum()
    }
    #expect(abs(Double(value.item) - zip(y, gs).map(*).reduce(0, +)) < 100 * Double(atol))
    expectClose(grads[0], Tensor(shape: xShape, scalars: dx.map(Float.init)), rtol: 1e-4, atol: atol)
    expectClose(grads[1], Tensor(shape: wShape, scalars: dw.map(Float.init)), rtol: 1e-4, atol: atol)
  }

  @Test func convTranspose2dForwardAndBackwardAgreeWithTorch() {
    // x = wave([8,32,8,8],0.37).requires_grad_(); w = wave([32,16,4,4],0.23,0.5,0.1).requires_grad_()
    // b = wave([16],1.1,0,0.3).requires_grad_()
    // y = F.conv_transpose2d(x, w, b, stride=2, padding=1); y.backward(wave(list(y.shape), 0.13, 0.2))
    let (_, grads) = valueWithGradients(
      at: [sineTensor([8, 32, 8, 8], 0.37), sineTensor([32, 16, 4, 4], 0.23, 0.5, 0.1), sineTensor([16], 1.1, 0, 0.3)]
    ) { p in
      let y = Tensor.convTranspose2d(p[0], weight: p[1], bias: p[2], stride: 2, padding: 1)
      #expect(y.shape == [8, 16, 16, 16])
      expectSampled(
        y.detached(), indices: [0, 1, 999, 20000, 32767], values: [0.1385612, 0.2927926, 0.2826699, 0.2436965, -0.1417057],
        sum: 631.7122, sumOfSquares: 3768.824)
      return (y * sineTensor(y.shape, 0.13, 0.2)).sum()
    }
    expectSampled(
      grads[0], indices: [0, 1, 777, 16383], values: [-0.09303798, 0.002743573, 0.2609538, -0.1314365], sum: 0.1267412,
      sumOfSquares: 916.6173)
    expectSampled(
      grads[1], indices: [0, 1, 100, 8191], values: [4.156552, 5.606784, 5.765923, -4.815803], sum: 5.573374,
      sumOfSquares: 189532)
    expectClose([grads[2].scalars[0], grads[2].scalars[15]], [1.349225, -1.372927], rtol: 1e-4, atol: 1e-5)
  }

  @Test(arguments: [[6, 3, 16, 16], [3, 2, 32, 32]])
  func batchChunksAgreeWithSamplesOneByOne(shape: [Int]) {
    // 16x16 splits 6 samples into chunks of 4 and 2; 32x32 lowers one sample per chunk.
    let x = testTensor(shape, seed: 21)
    let w = testTensor([4, shape[1], 3, 3], seed: 22)
    let seed = testTensor([shape[0], 4, shape[2], shape[3]], seed: 23)
    let (y, grads) = valueWithGradients(at: [x, w]) { p in (Tensor.conv2d(p[0], weight: p[1], padding: 1) * seed).sum() }
    var total: Float = 0
    var dxs: [Tensor] = []
    var dw = Tensor.zeros(w.shape)
    for s in 0..<shape[0] {
      let (ys, gs) = valueWithGradients(at: [x.sliced(axis: 0, s..<s + 1), w]) { p in
        (Tensor.conv2d(p[0], weight: p[1], padding: 1) * seed.sliced(axis: 0, s..<s + 1)).sum()
      }
      total += ys.item
      dxs.append(gs[0])
      dw = dw + gs[1]
    }
    expectClose(y, Tensor(scalar: total), rtol: 1e-4, atol: 1e-3)
    expectClose(grads[0], Tensor.concat(dxs, axis: 0), rtol: 1e-5, atol: 1e-5)
    expectClose(grads[1], dw, rtol: 1e-4, atol: 1e-4)
    let up = Tensor.convTranspose2d(seed, weight: w, padding: 1)
    let upPieces = (0..<shape[0]).map { s in Tensor.convTranspose2d(seed.sliced(axis: 0, s..<s + 1), weight: w, padding: 1) }
    expectClose(up, Tensor.concat(upPieces, axis: 0), rtol: 1e-5, atol: 1e-5)
  }

  // MARK: Gradients

  @Test func conv2dGradientsStride1NoPadding() {
    let x = testTensor([2, 3, 5, 5], seed: 1)
    let w = testTensor([4, 3, 3, 3], seed: 2)
    let b = testTensor([4], seed: 3)
    checkGradients([x, w, b]) { p in Tensor.conv2d(p[0], weight: p[1], bias: p[2]) }
  }

  @Test func conv2dGradientsStride2Padding1() {
    let x = testTensor([2, 3, 5, 5], seed: 4)
    let w = testTensor([4, 3, 3, 3], seed: 5)
    let b = testTensor([4], seed: 6)
    checkGradients([x, w, b]) { p in Tensor.conv2d(p[0], weight: p[1], bias: p[2], stride: 2, padding: 1) }
    checkGradients([x, w]) { p in Tensor.conv2d(p[0], weight: p[1], stride: (2, 1), padding: (0, 1)) }
  }

  @Test func conv2dGradientsPointwise() {
    let x = testTensor([2, 3, 4, 5], seed: 7)
    let w = testTensor([4, 3, 1, 1], seed: 8)
    let b = testTensor([4], seed: 9)
    checkGradients([x, w, b]) { p in Tensor.conv2d(p[0], weight: p[1], bias: p[2]) }
  }

  @Test func convTranspose2dGradientsStride1() {
    let x = testTensor([2, 3, 4, 4], seed: 10)
    let w = testTensor([3, 2, 3, 3], seed: 11)
    let b = testTensor([2], seed: 12)
    checkGradients([x, w, b]) { p in Tensor.convTranspose2d(p[0], weight: p[1], bias: p[2]) }
  }

  @Test func convTranspose2dGradientsStride2Padding1() {
    let x = testTensor([2, 3, 3, 3], seed: 13)
    let w = testTensor([3, 2, 3, 3], seed: 14)
    let b = testTensor([2], seed: 15)
    checkGradients([x, w, b]) { p in
      Tensor.convTranspose2d(p[0], weight: p[1], bias: p[2], stride: 2, padding: 1, outputPadding: 1)
    }
    checkGradients([x, w]) { p in Tensor.convTranspose2d(p[0], weight: p[1], stride: 2) }
  }

  @Test func convGradientsOnlyWhereRequired() {
    let x = testTensor([1, 2, 4, 4], seed: 16)
    let w = testTensor([3, 2, 3, 3], seed: 17).requiringGrad()
    Tensor.conv2d(x, weight: w, padding: 1).sum().backward()
    #expect(w.grad?.shape == [3, 2, 3, 3])
    #expect(!x.requiresGrad)
  }
}
