import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension Tensor {
  /// `axes` made non-negative, sorted and unique; empty means every axis.
  func normalizedAxes(_ axes: [Int]) -> [Int] {
    if axes.isEmpty { return Array(0..<rank) }
    let normal = axes.map { $0 < 0 ? $0 + rank : $0 }
    precondition(normal.allSatisfy { (0..<rank).contains($0) }, "axes \(axes) out of range for shape \(shape)")
    return Array(Set(normal)).sorted()
  }

  /// The shape after reducing `axes` (normalized), kept as 1 or dropped.
  func reducedShape(_ axes: [Int], keepDims: Bool) -> [Int] {
    keepDims
      ? shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
      : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
  }

  /// Moves `axes` (normalized) to form one contiguous block and returns the tensor with the
  /// `[outer, reduced, inner]` extents to reduce over the middle one.
  func reductionLayout(_ axes: [Int]) -> (Tensor, outer: Int, reduced: Int, inner: Int) {
    let contiguous = zip(axes, axes.dropFirst()).allSatisfy { $1 == $0 + 1 }
    if contiguous, let lo = axes.first, let hi = axes.last {
      return (
        self, shape[..<lo].reduce(1, *), shape[lo...hi].reduce(1, *), shape[(hi + 1)...].reduce(1, *)
      )
    }
    let kept = (0..<rank).filter { !axes.contains($0) }
    let moved = withoutGradients { permuted(kept + axes) }
    return (moved, kept.map { shape[$0] }.reduce(1, *), axes.map { shape[$0] }.reduce(1, *), 1)
  }

  /// Sum over `axes` (every axis when empty).
  public func sum(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    let axes = normalizedAxes(axes)
    let (x, outer, reduced, inner) = reductionLayout(axes)
    let result = Tensor(shape: reducedShape(axes, keepDims: keepDims)) { out in
      x.withUnsafeBufferPointer { input in
        reduceSum(input.baseAddress!, out.baseAddress!, outer: outer, reduced: reduced, inner: inner)
      }
    }
    let keptShape = reducedShape(axes, keepDims: true)
    let inputShape = shape
    return result.recorded("sum", [self]) { g in [g.reshaped(keptShape).expand(to: inputShape)] }
  }

  /// Mean over `axes` (every axis when empty).
  public func mean(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    let axes = normalizedAxes(axes)
    let n = axes.map { shape[$0] }.reduce(1, *)
    return sum(axes: axes, keepDims: keepDims) * (1 / Float(n))
  }

  /// Maximum over `axes`; the gradient is shared equally among tied maxima (PyTorch's `amax`).
  public func max(axes: [Int] = [], keepDims: Bool = false) -> Tensor {
    let axes = normalizedAxes(axes)
    let (x, outer, reduced, inner) = reductionLayout(axes)
    let keptShape = reducedShape(axes, keepDims: true)
    let kept = Tensor(shape: keptShape) { out in
      x.withUnsafeBufferPointer { input in
        let s = input.baseAddress!
        let o = out.baseAddress!
        for i in 0..<outer * inner { o[i] = -.infinity }
        for a in 0..<outer {
          for r in 0..<reduced {
            let row = s + (a * reduced + r) * inner
            let dst = o + a * inner
            for j in 0..<inner { dst[j] = Swift.max(dst[j], row[j]) }
          }
        }
      }
    }
    let result = keepDims ? kept : kept.reshaped(reducedShape(axes, keepDims: false))
    let input = self
    return result.recorded("max", [self]) { g in
      let mask = mapBinary(input, kept) { $0 == $1 ? 1 : 0 }
      let ties = mask.sum(axes: axes, keepDims: true)
      return [mask * (g.reshaped(keptShape) / ties)]
    }
  }

  /// Variance over `axes` with `correction` subtracted from the count (1: unbiased, PyTorch's default).
  public func variance(axes: [Int] = [], keepDims: Bool = false, correction: Int = 1) -> Tensor {
    let axes = normalizedAxes(axes)
    let n = axes.map { shape[$0] }.reduce(1, *)
    let centered = self - mean(axes: axes, keepDims: true)
    return centered.square().sum(axes: axes, keepDims: keepDims) * (1 / Float(n - correction))
  }

  /// Softmax along `axis`.
  public func softmax(axis: Int = -1) -> Tensor {
    let axis = normalizedAxes([axis])[0]
    let y = softmaxKernel(axis: axis, log: false)
    return y.recorded("softmax", [self]) { g in
      if axis == y.rank - 1 {
        let n = y.shape[axis]
        return [Tensor(shape: y.shape) { out in
          g.withUnsafeBufferPointer { gb in
            y.withUnsafeBufferPointer { yb in
              forEachRowBlock(rows: y.count / Swift.max(n, 1), n: n) { rows, offset in
                distill_softmax_backward_rows(gb.baseAddress! + offset, yb.baseAddress! + offset, out.baseAddress! + offset, rows, n)
              }
            }
          }
        }]
      }
      let dot = (g * y).sum(axes: [axis], keepDims: true)
      return [y * (g - dot)]
    }
  }

  /// Log-softmax along `axis`, computed stably.
  public func logSoftmax(axis: Int = -1) -> Tensor {
    let axis = normalizedAxes([axis])[0]
    let y = softmaxKernel(axis: axis, log: true)
    return y.recorded("logSoftmax", [self]) { g in
      [g - y.exp() * g.sum(axes: [axis], keepDims: true)]
    }
  }

  private func softmaxKernel(axis: Int, log: Bool) -> Tensor {
    let outer = shape[..<axis].reduce(1, *)
    let n = shape[axis]
    let inner = shape[(axis + 1)...].reduce(1, *)
    if inner == 1 {
      // Contiguous rows (attention scores): vectorised max, exp and sum in CKernels.
      return Tensor(shape: shape) { out in
        withUnsafeBufferPointer { input in
          forEachRowBlock(rows: outer, n: n) { rows, offset in
            if log {
              distill_log_softmax_rows(input.baseAddress! + offset, out.baseAddress! + offset, rows, n)
            } else {
              distill_softmax_rows(input.baseAddress! + offset, out.baseAddress! + offset, rows, n)
            }
          }
        }
      }
    }
    return Tensor(shape: shape) { out in
      withUnsafeBufferPointer { input in
        for a in 0..<outer {
          for j in 0..<inner {
            let s = input.baseAddress! + a * n * inner + j
            let o = out.baseAddress! + a * n * inner + j
            var m = -Float.infinity
            for k in 0..<n { m = Swift.max(m, s[k * inner]) }
            var total: Float = 0
            for k in 0..<n {
              let e = expf(s[k * inner] - m)
              o[k * inner] = e
              total += e
            }
            if log {
              let lse = logf(total)
              for k in 0..<n { o[k * inner] = s[k * inner] - m - lse }
            } else {
              let scale = 1 / total
              for k in 0..<n { o[k * inner] *= scale }
            }
          }
        }
      }
    }
  }
}

/// Splits `rows` contiguous rows of `n` floats among the cores (see ``parallelFor``) and calls
/// `body(rowCount, firstElementOffset)` for each block.
@inline(__always)
func forEachRowBlock(rows: Int, n: Int, _ body: (Int, Int) -> Void) {
  parallelFor(rows, cost: 4 * n) { range in
    if !range.isEmpty { body(range.count, range.lowerBound * n) }
  }
}

/// `out[a, j] = sum_r x[a, r, j]`, with several accumulators so a long row vectorises.
@usableFromInline
func reduceSum(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, outer: Int, reduced: Int, inner: Int) {
  if inner == 1 {
    for a in 0..<outer { out[a] = sumContiguous(x + a * reduced, reduced) }
    return
  }
  if reduced == 0 {
    out.update(repeating: 0, count: outer * inner)
    return
  }
  for a in 0..<outer {
    let dst = out + a * inner
    let src = x + a * reduced * inner
    for j in 0..<inner { dst[j] = src[j] }
    for r in 1..<reduced {
      let row = src + r * inner
      for j in 0..<inner { dst[j] += row[j] }
    }
  }
}

/// Sum of `n` contiguous floats in 16 lanes (vectorisable, and more accurate than one chain).
@inlinable
func sumContiguous(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
  var lanes = SIMD16<Float>()
  var i = 0
  while i + 16 <= n {
    lanes += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
    i += 16
  }
  var total = lanes.sum()
  while i < n {
    total += x[i]
    i += 1
  }
  return total
}
