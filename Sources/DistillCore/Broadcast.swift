/// NumPy broadcasting: shapes are aligned at their last dimension; sizes must match or be 1.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
  let rank = max(a.count, b.count)
  var out = [Int](repeating: 1, count: rank)
  for i in 0..<rank {
    let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
    let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
    precondition(x == y || x == 1 || y == 1, "shapes \(a) and \(b) do not broadcast")
    out[i] = x == 1 ? y : x
  }
  return out
}

/// Row-major element strides of `shape`.
@usableFromInline
func contiguousStrides(_ shape: [Int]) -> [Int] {
  var strides = [Int](repeating: 1, count: shape.count)
  var step = 1
  for i in stride(from: shape.count - 1, through: 0, by: -1) {
    strides[i] = step
    step *= shape[i]
  }
  return strides
}

/// Strides of `shape` read as `outShape` under broadcasting: 0 along broadcast dimensions.
@usableFromInline
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
  let offset = outShape.count - shape.count
  let own = contiguousStrides(shape)
  return (0..<outShape.count).map { i in
    i < offset || shape[i - offset] == 1 ? 0 : own[i - offset]
  }
}

/// An iteration plan over an output of `shape` reading operands through `strides`, with
/// adjacent dimensions merged wherever every operand allows, so the innermost loop is long.
@usableFromInline
struct StridedPlan {
  @usableFromInline var shape: [Int]
  @usableFromInline var strides: [[Int]]

  @usableFromInline
  init(shape: [Int], strides: [[Int]]) {
    var dims: [Int] = []
    var merged: [[Int]] = Array(repeating: [], count: strides.count)
    for d in 0..<shape.count where shape[d] != 1 {
      if let last = dims.last,
        strides.indices.allSatisfy({ k in merged[k].last! == strides[k][d] * shape[d] })
      {
        dims[dims.count - 1] = last * shape[d]
        for k in strides.indices { merged[k][merged[k].count - 1] = strides[k][d] }
      } else {
        dims.append(shape[d])
        for k in strides.indices { merged[k].append(strides[k][d]) }
      }
    }
    if dims.isEmpty {
      dims = [1]
      merged = strides.map { _ in [0] }
    }
    self.shape = dims
    self.strides = merged
  }

  /// Calls `body(offsets, innerCount, innerStrides)` once per run of the innermost dimension.
  @inlinable @inline(__always)
  func forEachRun(_ body: ([Int], Int, [Int]) -> Void) {
    let rank = shape.count
    let inner = shape[rank - 1]
    let innerStrides = strides.map { $0[rank - 1] }
    var index = [Int](repeating: 0, count: max(rank - 1, 0))
    var offsets = [Int](repeating: 0, count: strides.count)
    let outer = shape.dropLast().reduce(1, *)
    for _ in 0..<outer {
      body(offsets, inner, innerStrides)
      var d = rank - 2
      while d >= 0 {
        index[d] += 1
        for k in offsets.indices { offsets[k] += strides[k][d] }
        if index[d] < shape[d] { break }
        for k in offsets.indices { offsets[k] -= strides[k][d] * shape[d] }
        index[d] = 0
        d -= 1
      }
    }
  }
}

extension Tensor {
  /// This tensor materialised at `shape` by broadcasting. Gradients sum back.
  public func expand(to shape: [Int]) -> Tensor {
    if shape == self.shape { return self }
    precondition(broadcastShape(self.shape, shape) == shape, "cannot expand \(self.shape) to \(shape)")
    let plan = StridedPlan(shape: shape, strides: [contiguousStrides(shape), broadcastStrides(self.shape, to: shape)])
    let result = Tensor(shape: shape) { out in
      withUnsafeBufferPointer { x in
        plan.forEachRun { offsets, n, inner in
          let o = out.baseAddress! + offsets[0]
          let s = x.baseAddress! + offsets[1]
          if inner[1] == 0 {
            let v = s.pointee
            for i in 0..<n { o[i] = v }
          } else {
            for i in 0..<n { o[i] = s[i * inner[1]] }
          }
        }
      }
    }
    let original = self.shape
    return result.recorded("expand", [self]) { g in [g.sum(toShape: original)] }
  }

  /// Sums a broadcast gradient back down to `shape`.
  public func sum(toShape target: [Int]) -> Tensor {
    if target == shape { return self }
    let offset = shape.count - target.count
    precondition(offset >= 0, "cannot sum \(shape) to \(target)")
    var axes: [Int] = Array(0..<offset)
    for i in 0..<target.count where target[i] == 1 && shape[i + offset] != 1 { axes.append(i + offset) }
    return sum(axes: axes, keepDims: true).reshaped(target)
  }
}
