// The loops behind the elementwise ops: plain scalar loops over buffers, which the optimiser
// vectorises (see docs/architecture.md). Closures passed here are literals and get inlined.

@inlinable @inline(__always)
func mapUnary(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
  Tensor(shape: x.shape) { out in
    x.withUnsafeBufferPointer { input in
      let o = out.baseAddress!
      let s = input.baseAddress!
      for i in 0..<out.count { o[i] = f(s[i]) }
    }
  }
}

@inlinable @inline(__always)
func mapBinary(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
  if a.shape == b.shape {
    return Tensor(shape: a.shape) { out in
      a.withUnsafeBufferPointer { x in
        b.withUnsafeBufferPointer { y in
          let o = out.baseAddress!
          let p = x.baseAddress!
          let q = y.baseAddress!
          for i in 0..<out.count { o[i] = f(p[i], q[i]) }
        }
      }
    }
  }
  let shape = broadcastShape(a.shape, b.shape)
  let plan = StridedPlan(
    shape: shape,
    strides: [contiguousStrides(shape), broadcastStrides(a.shape, to: shape), broadcastStrides(b.shape, to: shape)])
  return Tensor(shape: shape) { out in
    a.withUnsafeBufferPointer { x in
      b.withUnsafeBufferPointer { y in
        plan.forEachRun { offsets, n, inner in
          let o = out.baseAddress! + offsets[0]
          let p = x.baseAddress! + offsets[1]
          let q = y.baseAddress! + offsets[2]
          switch (inner[1], inner[2]) {
          case (1, 1): for i in 0..<n { o[i] = f(p[i], q[i]) }
          case (1, 0):
            let v = q.pointee
            for i in 0..<n { o[i] = f(p[i], v) }
          case (0, 1):
            let v = p.pointee
            for i in 0..<n { o[i] = f(v, q[i]) }
          default: for i in 0..<n { o[i] = f(p[i * inner[1]], q[i * inner[2]]) }
          }
        }
      }
    }
  }
}

/// Applies `f` to corresponding elements of three same-shape tensors.
@inlinable @inline(__always)
func mapTernary(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
  precondition(a.shape == b.shape && b.shape == c.shape, "shapes \(a.shape), \(b.shape), \(c.shape) differ")
  return Tensor(shape: a.shape) { out in
    a.withUnsafeBufferPointer { x in
      b.withUnsafeBufferPointer { y in
        c.withUnsafeBufferPointer { z in
          let o = out.baseAddress!
          let p = x.baseAddress!
          let q = y.baseAddress!
          let r = z.baseAddress!
          for i in 0..<out.count { o[i] = f(p[i], q[i], r[i]) }
        }
      }
    }
  }
}
