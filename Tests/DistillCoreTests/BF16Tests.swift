import DistillTestSupport
import Testing

@testable import DistillCore

/// `x` rounded to the nearest bfloat16 (ties to even), as `vcvtneps2bf16` rounds: the
/// reference operands of the bf16 products.
func roundedToBF16(_ x: Float) -> Float {
  let bits = x.bitPattern
  return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
}

func roundedToBF16(_ t: Tensor) -> Tensor {
  Tensor(shape: t.shape, scalars: t.scalars.map(roundedToBF16))
}

/// The largest elementwise difference.
func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
  zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Mixed precision (``ComputePrecision/bf16``): products and convolutions against float32
/// arithmetic on operands rounded to bfloat16 first (which is what either kernel computes, up to
/// the order of float32 additions: tight), against plain float32 (bf16's 8-bit significand:
/// loose), and with gradients, which run through the same products inside the scope. Both
/// kernels (``BF16Kernel``) run, whichever this CPU would pick.
@Suite(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
struct BF16Tests {
  @Test(arguments: BF16Kernel.allCases, [(false, false), (false, true), (true, false), (true, true)])
  func productsMatchRoundedOperands(kernel: BF16Kernel, transposes: (Bool, Bool)) {
    let (transposeA, transposeB) = transposes
    for (index, (m, n, k)) in GemmTests.shapes.enumerated() {
      let a = testTensor([m * k], seed: UInt64(3 * index + 1)).scalars
      let b = testTensor([k * n], seed: UInt64(3 * index + 2)).scalars
      let c = testTensor([m * n], seed: UInt64(3 * index + 3)).scalars
      for (alpha, beta) in [(Float(1), Float(0)), (0.5, -2)] {
        var out = beta == 0 ? [Float](repeating: .nan, count: m * n) : c
        out.withUnsafeMutableBufferPointer { o in
          BF16Kernel.$current.withValue(kernel) {
            withComputePrecision(.bf16) {
              sgemm(
                a, transposeA: transposeA, b, transposeB: transposeB, o.baseAddress!, m: m, n: n,
                k: k, alpha: alpha, beta: beta)
            }
          }
        }
        let rounded = GemmTests.reference(
          a.map(roundedToBF16), transposeA: transposeA, b.map(roundedToBF16),
          transposeB: transposeB, c, m: m, n: n, k: k,
          alpha: alpha, beta: beta)
        let exact = GemmTests.reference(
          a, transposeA: transposeA, b, transposeB: transposeB, c, m: m, n: n, k: k, alpha: alpha,
          beta: beta)
        let label = "\(kernel) \(m)x\(n)x\(k) alpha \(alpha) beta \(beta)"
        expectClose(out, rounded, rtol: 1e-5, atol: 1e-5 * Float(k).squareRoot(), label)
        // bfloat16 keeps 8 significant bits: relative error 2^-9 per operand.
        expectClose(out, exact, rtol: 1e-2, atol: 1e-2 * Float(k).squareRoot(), label)
        if k >= 8 {
          #expect(largestDifference(out, exact) > 1e-5, "\(label): no sign of bfloat16 rounding")
        }
      }
    }
  }

  @Test func threadedProductsAgreeWithOneThread() {
    let (m, n, k) = (64, 1030, 300)
    let a = testTensor([m * k], seed: 7).scalars
    let b = testTensor([k * n], seed: 8).scalars
    var single = [Float](repeating: 0, count: m * n)
    var threaded = single
    withComputePrecision(.bf16) {
      single.withUnsafeMutableBufferPointer {
        sgemm(
          a, transposeA: false, b, transposeB: false, $0.baseAddress!, m: m, n: n, k: k,
          threaded: false)
      }
      threaded.withUnsafeMutableBufferPointer {
        sgemm(
          a, transposeA: false, b, transposeB: false, $0.baseAddress!, m: m, n: n, k: k,
          threaded: true)
      }
    }
    #expect(single == threaded)
  }

  /// Convolutions of every route (direct planes; small planes, implicit products; stride 2 with
  /// its patch-matrix input gradient; pointwise; an odd depth of 27), forward and both
  /// gradients, on both kernels, against float32 on rounded operands and upstream gradient, and
  /// loosely against float32.
  @Test(arguments: BF16Kernel.allCases, [
    ([2, 8, 32, 32], [16, 8, 3, 3], 1, 1),
    ([4, 16, 4, 4], [24, 16, 3, 3], 1, 1),
    ([2, 8, 16, 16], [8, 8, 3, 3], 2, 1),
    ([2, 16, 8, 8], [8, 16, 1, 1], 1, 0),
    ([2, 3, 32, 32], [16, 3, 3, 3], 1, 1),
    // Odd channel counts, planes of 36 and 80 pixels (rows of 6 and 10) and of odd width.
    ([3, 5, 6, 6], [7, 5, 3, 3], 1, 1),
    ([2, 6, 8, 10], [9, 6, 3, 3], 1, 1),
    ([2, 4, 7, 7], [8, 4, 3, 3], 1, 1),
  ])
  func convolutionsAndGradientsMatchRoundedOperands(
    kernel: BF16Kernel, shapes: ([Int], [Int], Int, Int)
  ) {
    let (xShape, wShape, stride, padding) = shapes
    let x = testTensor(xShape, seed: 51)
    let w = testTensor(wShape, seed: 52)
    let probe = withoutGradients { Tensor.conv2d(x, weight: w, stride: stride, padding: padding) }
    let upstream = roundedToBF16(testTensor(probe.shape, seed: 53))
    func run(_ x: Tensor, _ w: Tensor, _ precision: ComputePrecision) -> (Tensor, [Tensor]) {
      withComputePrecision(precision) {
        var y = Tensor(scalar: 0)
        let (_, grads) = valueWithGradients(at: [x, w]) { p in
          y = Tensor.conv2d(p[0], weight: p[1], stride: stride, padding: padding)
          return (y * upstream).sum()
        }
        return (y.detached(), grads)
      }
    }
    let (y, grads) = BF16Kernel.$current.withValue(kernel) { run(x, w, .bf16) }
    let (yRounded, gradsRounded) = run(roundedToBF16(x), roundedToBF16(w), .fp32)
    let (yExact, gradsExact) = run(x, w, .fp32)
    let depth = Float(wShape[1] * wShape[2] * wShape[3])
    let label = "\(kernel) x \(xShape) w \(wShape)"
    expectClose(y, yRounded, rtol: 1e-5, atol: 1e-5 * depth.squareRoot(), "\(label) forward")
    expectClose(y, yExact, rtol: 1e-2, atol: 1e-2 * depth.squareRoot(), "\(label) forward vs fp32")
    #expect(
      largestDifference(y.scalars, yExact.scalars) > 1e-5, "\(label): no sign of bfloat16 rounding")
    // Input gradients sum over output channels and taps; weight gradients over the batch's pixels.
    let sums = [
      Float(wShape[0] * wShape[2] * wShape[3]),
      Float(probe.shape[0] * probe.shape[2] * probe.shape[3]),
    ]
    for i in 0..<2 {
      let scale = sums[i].squareRoot()
      expectClose(
        grads[i], gradsRounded[i], rtol: 1e-5, atol: 1e-5 * scale, "\(label) gradient \(i)")
      expectClose(
        grads[i], gradsExact[i], rtol: 1e-2, atol: 1e-2 * scale, "\(label) gradient \(i) vs fp32")
    }
  }

  @Test func linearAndAttentionProductsRunInTheScope() {
    let x = testTensor([6, 40], seed: 61)
    let w = testTensor([24, 40], seed: 62)
    let q = testTensor([2, 16, 40], seed: 63)
    let (_, grads) = withComputePrecision(.bf16) {
      valueWithGradients(at: [x, w, q]) { p in
        Tensor.linear(p[0], weight: p[1]).sum()
          + p[2].matmul(p[2], transposeOther: true).square().sum()
      }
    }
    let (_, rounded) = valueWithGradients(at: [x, w, q].map(roundedToBF16)) { p in
      Tensor.linear(p[0], weight: p[1]).sum()
        + p[2].matmul(p[2], transposeOther: true).square().sum()
    }
    // Linear's gradients read the float32 ones of the sum: dW = 1^T x_bf16, dx = 1 W_bf16.
    expectClose(grads[0], rounded[0], rtol: 1e-5, atol: 1e-5)
    expectClose(grads[1], rounded[1], rtol: 1e-5, atol: 1e-5)
    // q q^T's gradient multiplies the float32 upstream gradient 2 q q^T (rounded again).
    expectClose(grads[2], rounded[2], rtol: 2e-2, atol: 1e-1)
  }

  @Test func theScopeIsLocalToItsBody() async {
    #expect(ComputePrecision.current == .fp32)
    withComputePrecision(.bf16) {
      #expect(ComputePrecision.current == .bf16)
      withComputePrecision(.fp32) { #expect(ComputePrecision.current == .fp32) }
      #expect(ComputePrecision.current == .bf16)
    }
    #expect(ComputePrecision.current == .fp32)
    // A detached task started inside the scope does not inherit it.
    let task = withComputePrecision(.bf16) { Task.detached { ComputePrecision.current } }
    #expect(await task.value == .fp32)
  }
}
