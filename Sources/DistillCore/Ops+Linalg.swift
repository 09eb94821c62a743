import CKernels
import Foundation

#if canImport(Accelerate)
  import Accelerate
#else
  import CBLAS
#endif

/// Which code runs matrix products.
///
/// Distillery's own AVX-512 kernel (`CKernels/gemm.c`) where the CPU has AVX-512, BLAS
/// elsewhere; `DISTILL_GEMM=blas` in the environment forces BLAS (for comparisons).
public enum GemmKernel {
  /// Whether matrix products run on Distillery's kernel rather than BLAS.
  public static let isOwn: Bool =
    distill_sgemm_supported() != 0 && ProcessInfo.processInfo.environment["DISTILL_GEMM"] != "blas"

  /// Products of fewer multiply-adds than this run on one thread: below it the hand-off to
  /// a second thread costs about what it saves.
  static let threadingThreshold = 1 << 20

  /// The threads a kernel of `multiplyAdds` gets: ``ComputeThreads/count``, or one below
  /// ``threadingThreshold``.
  static func threads(multiplyAdds: Int) -> Int { multiplyAdds >= threadingThreshold ? ComputeThreads.count : 1 }
}

/// `c = alpha * op(a) * op(b) + beta * c` for row-major `op(a)`: m x k, `op(b)`: k x n.
///
/// With `threaded`, a large product is split across ``ComputeThreads/count`` threads (by
/// row blocks or column panels of `c`, gemm.c); a caller that runs products in parallel
/// passes false, and the precision it read on its own thread (the scope of
/// ``withComputePrecision(_:_:)`` is not seen on worker threads).
@usableFromInline
func sgemm(
  _ a: UnsafePointer<Float>, transposeA: Bool, _ b: UnsafePointer<Float>, transposeB: Bool,
  _ c: UnsafeMutablePointer<Float>, m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0,
  threaded: Bool = true, precision: ComputePrecision = .current
) {
  if m == 0 || n == 0 { return }
  if k == 0 {
    if beta == 0 { c.update(repeating: 0, count: m * n) }
    return
  }
  guard GemmKernel.isOwn else {
    precondition(precision == .fp32, "bf16 products need Distillery's product kernel")
    cblas_sgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
      Int32(m), Int32(n), Int32(k), alpha, a, Int32(transposeA ? m : k), b, Int32(transposeB ? k : n), beta, c,
      Int32(n))
    return
  }
  let (aRow, aColumn) = transposeA ? (1, m) : (k, 1)
  let (bRow, bColumn) = transposeB ? (1, k) : (n, 1)
  let threads = threaded ? GemmKernel.threads(multiplyAdds: m * n * k) : 1
  distill_sgemm(threads, m, n, k, alpha, a, aRow, aColumn, b, bRow, bColumn, beta, c, n, precision.kernelFlag)
}

/// `[batch, m, n]` product of `[batch, m, k]` and `[batch, k, n]` operands (with transposes).
///
/// Several small products run one per thread rather than each split across threads.
func batchedProduct(
  _ a: Tensor, transposeA: Bool, _ b: Tensor, transposeB: Bool, batch: Int, m: Int, n: Int, k: Int
) -> Tensor {
  Tensor(shape: [batch, m, n]) { out in
    a.withUnsafeBufferPointer { x in
      b.withUnsafeBufferPointer { y in
        let (xp, yp, op) = (
          SendableConstPointer(x.baseAddress!), SendableConstPointer(y.baseAddress!), SendablePointer(out.baseAddress!)
        )
        if batch > 1 && batch >= ComputeThreads.count && GemmKernel.isOwn {
          let precision = ComputePrecision.current
          parallelFor(batch, cost: m * n * k / 4) { range in
            for i in range {
              sgemm(
                xp.base + i * m * k, transposeA: transposeA, yp.base + i * k * n, transposeB: transposeB,
                op.base + i * m * n, m: m, n: n, k: k, threaded: false, precision: precision)
            }
          }
        } else {
          for i in 0..<batch {
            sgemm(
              xp.base + i * m * k, transposeA: transposeA, yp.base + i * k * n, transposeB: transposeB,
              op.base + i * m * n, m: m, n: n, k: k)
          }
        }
      }
    }
  }
}

extension Tensor {
  /// Matrix product over the last two dimensions.
  ///
  /// `[..., m, k] x [k, n]` folds the leading dimensions into one product;
  /// `[..., m, k] x [..., k, n]` with equal leading dimensions is a batched product.
  /// With `transposeOther`, `other` is given as `[..., n, k]` (or `[n, k]`) and used
  /// transposed, as `matmul(other.transposed())` but without materialising the transpose
  /// (BLAS reads it transposed, forward and backward).
  public func matmul(_ other: Tensor, transposeOther: Bool = false) -> Tensor {
    precondition(rank >= 2 && other.rank >= 2, "matmul needs matrices, got \(shape) and \(other.shape)")
    let k = shape[rank - 1]
    let otherK = other.shape[other.rank - (transposeOther ? 1 : 2)]
    precondition(otherK == k, "matmul: \(shape) x \(other.shape)\(transposeOther ? "^T" : "") inner dimensions differ")
    let n = other.shape[other.rank - (transposeOther ? 2 : 1)]
    let a = self
    let b = other
    let m: Int
    let batch: Int
    if other.rank == 2 {
      m = count / Swift.max(k, 1)
      batch = 1
    } else {
      precondition(
        Array(shape.dropLast(2)) == Array(other.shape.dropLast(2)),
        "batched matmul needs equal leading dimensions, got \(shape) and \(other.shape)")
      m = shape[rank - 2]
      batch = shape.dropLast(2).reduce(1, *)
    }
    let outShape = Array(shape.dropLast()) + [n]
    let result = batchedProduct(a, transposeA: false, b, transposeB: transposeOther, batch: batch, m: m, n: n, k: k)
      .reshaped(outShape)
    return result.detached().recorded("matmul", [a, b]) { g in
      // dA = g op(B)^T; dB = A^T g, or g^T A when B is used transposed.
      let da = a.requiresGrad
        ? batchedProduct(g, transposeA: false, b, transposeB: !transposeOther, batch: batch, m: m, n: k, k: n)
          .reshaped(a.shape) : nil
      let db: Tensor? =
        !b.requiresGrad ? nil
        : transposeOther
          ? batchedProduct(g, transposeA: true, a, transposeB: false, batch: batch, m: n, n: k, k: m).reshaped(b.shape)
          : batchedProduct(a, transposeA: true, g, transposeB: false, batch: batch, m: k, n: n, k: m).reshaped(b.shape)
      return [da, db]
    }
  }

  /// `x W^T + b` over the last dimension, as PyTorch's `F.linear`: `weight` is `[out, in]`,
  /// `bias` is `[out]`. One BLAS call forward and one per gradient.
  ///
  /// A weight held in bfloat16 (``isBFloat16``, frozen) is widened as the forward product packs
  /// it (for the input gradient, into a transient float32 copy), and its products run in
  /// ``ComputePrecision/bf16``.
  public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    precondition(weight.rank == 2 && x.shape.last == weight.shape[1], "linear: input \(x.shape) does not fit weight \(weight.shape)")
    let (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
    if let bias { precondition(bias.shape == [outFeatures], "linear: bias \(bias.shape) does not fit \(outFeatures) outputs") }
    let rows = x.count / Swift.max(inFeatures, 1)
    let outShape = Array(x.shape.dropLast()) + [outFeatures]
    let result = Tensor(shape: outShape) { out in
      let o = out.baseAddress!
      var beta: Float = 0
      if let bias {
        bias.withUnsafeBufferPointer { b in
          for r in 0..<rows { (o + r * outFeatures).update(from: b.baseAddress!, count: outFeatures) }
        }
        beta = 1
      }
      withWeightPrecision(weight) {
        x.withUnsafeBufferPointer { xs in
          if weight.isBFloat16, GemmKernel.isOwn, inFeatures > 0 {
            // Widened as the product packs it: no float32 copy of the weight.
            weight.withHalves { halves in
              distill_sgemm_bf16_weight(
                GemmKernel.threads(multiplyAdds: rows * outFeatures * inFeatures), rows, outFeatures, inFeatures,
                xs.baseAddress!, halves, beta, o, ComputePrecision.current.kernelFlag)
            }
            return
          }
          weight.float32().withUnsafeBufferPointer { w in
            sgemm(xs.baseAddress!, transposeA: false, w.baseAddress!, transposeB: true, o, m: rows, n: outFeatures, k: inFeatures, beta: beta)
          }
        }
      }
    }
    var inputs = [x, weight]
    if let bias { inputs.append(bias) }
    return result.recorded("linear", inputs) { g in
      var grads: [Tensor?] = [
        x.requiresGrad
          ? withWeightPrecision(weight) {
            batchedProduct(
              g, transposeA: false, weight.float32(), transposeB: false, batch: 1, m: rows, n: inFeatures, k: outFeatures)
          }.reshaped(x.shape) : nil,
        weight.requiresGrad
          ? batchedProduct(g, transposeA: true, x, transposeB: false, batch: 1, m: outFeatures, n: inFeatures, k: rows)
            .reshaped(weight.shape) : nil,
      ]
      if let bias { grads.append(bias.requiresGrad ? g.reshaped([rows, outFeatures]).sum(axes: [0]) : nil) }
      return grads
    }
  }
}
