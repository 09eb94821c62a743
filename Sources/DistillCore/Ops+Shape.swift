import CKernels

extension Tensor {
  /// The same elements viewed with `newShape`; one dimension may be -1 and is inferred.
  /// Shares storage.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    var resolved = newShape
    if let unknown = newShape.firstIndex(of: -1) {
      let known = newShape.enumerated().filter { $0.offset != unknown }.map(\.element).reduce(1, *)
      precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
      resolved[unknown] = count / known
    }
    precondition(resolved.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
    if resolved == shape { return self }
    let original = shape
    return Tensor(shape: resolved, storage: storage).recorded("reshape", [self]) { g in [g.reshaped(original)] }
  }

  /// All dimensions from `startAxis` on merged into one.
  public func flattened(from startAxis: Int = 0) -> Tensor {
    let startAxis = startAxis < 0 ? startAxis + rank : startAxis
    return reshaped(Array(shape[..<startAxis]) + [shape[startAxis...].reduce(1, *)])
  }

  /// A new dimension of size 1 at `axis`.
  public func unsqueezed(at axis: Int) -> Tensor {
    var s = shape
    s.insert(1, at: axis < 0 ? axis + rank + 1 : axis)
    return reshaped(s)
  }

  /// The dimension `axis` (of size 1) removed.
  public func squeezed(at axis: Int) -> Tensor {
    let a = axis < 0 ? axis + rank : axis
    precondition(shape[a] == 1, "cannot squeeze axis \(axis) of shape \(shape)")
    var s = shape
    s.remove(at: a)
    return reshaped(s)
  }

  /// Dimensions reordered: result dimension `i` is input dimension `permutation[i]`.
  public func permuted(_ permutation: [Int]) -> Tensor {
    precondition(permutation.sorted() == Array(0..<rank), "\(permutation) is not a permutation of \(rank) axes")
    if permutation == Array(0..<rank) { return self }
    let outShape = permutation.map { shape[$0] }
    let own = contiguousStrides(shape)
    let plan = StridedPlan(shape: outShape, strides: [contiguousStrides(outShape), permutation.map { own[$0] }])
    let result = Tensor(shape: outShape) { out in
      withUnsafeBufferPointer { x in permute(x.baseAddress!, into: out.baseAddress!, plan) }
    }
    var inverse = [Int](repeating: 0, count: rank)
    for (i, p) in permutation.enumerated() { inverse[p] = i }
    return result.recorded("permute", [self]) { g in [g.permuted(inverse)] }
  }

  /// Dimensions `a` and `b` swapped.
  public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
    var p = Array(0..<rank)
    p.swapAt(a < 0 ? a + rank : a, b < 0 ? b + rank : b)
    return permuted(p)
  }

  /// Elements `range` along `axis`.
  public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
    let axis = axis < 0 ? axis + rank : axis
    precondition(range.lowerBound >= 0 && range.upperBound <= shape[axis], "slice \(range) out of bounds for axis \(axis) of \(shape)")
    if range.count == shape[axis] { return self }
    let outer = shape[..<axis].reduce(1, *)
    let inner = shape[(axis + 1)...].reduce(1, *)
    var outShape = shape
    outShape[axis] = range.count
    let n = shape[axis]
    let result = Tensor(shape: outShape) { out in
      withUnsafeBufferPointer { x in
        let block = range.count * inner
        for a in 0..<outer {
          (out.baseAddress! + a * block).update(from: x.baseAddress! + (a * n + range.lowerBound) * inner, count: block)
        }
      }
    }
    let original = shape
    return result.recorded("slice", [self]) { g in
      var pads = Array(repeating: (0, 0), count: original.count)
      pads[axis] = (range.lowerBound, original[axis] - range.upperBound)
      return [g.padded(pads)]
    }
  }

  /// Pieces of `sizes` along `axis`; the sizes must add up to the dimension.
  public func split(_ sizes: [Int], axis: Int) -> [Tensor] {
    let axis = axis < 0 ? axis + rank : axis
    precondition(sizes.reduce(0, +) == shape[axis], "split sizes \(sizes) do not add up to \(shape[axis])")
    var start = 0
    return sizes.map { size in
      defer { start += size }
      return sliced(axis: axis, start..<start + size)
    }
  }

  /// `tensors` joined along `axis`; all other dimensions must match.
  public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concat of no tensors")
    let first = tensors[0]
    let axis = axis < 0 ? axis + first.rank : axis
    for t in tensors {
      precondition(
        t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == axis || t.shape[$0] == first.shape[$0] },
        "cannot concat \(t.shape) with \(first.shape) along axis \(axis)")
    }
    let outer = first.shape[..<axis].reduce(1, *)
    let inner = first.shape[(axis + 1)...].reduce(1, *)
    let sizes = tensors.map { $0.shape[axis] }
    let total = sizes.reduce(0, +)
    var outShape = first.shape
    outShape[axis] = total
    let result = Tensor(shape: outShape) { out in
      var offset = 0
      for (t, size) in zip(tensors, sizes) {
        t.withUnsafeBufferPointer { x in
          let block = size * inner
          for a in 0..<outer {
            (out.baseAddress! + (a * total + offset) * inner).update(from: x.baseAddress! + a * block, count: block)
          }
        }
        offset += size
      }
    }
    let wanted = tensors.map(\.requiresGrad)  // not the tensors: their buffers would stay alive
    return result.recorded("concat", tensors) { g in
      let pieces = g.split(sizes, axis: axis)
      return zip(wanted, pieces).map { $0 ? $1 : nil }
    }
  }

  /// `tensors` (of equal shapes) stacked along a new dimension `axis`.
  public static func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
    concat(tensors.map { $0.unsqueezed(at: axis) }, axis: axis)
  }

  /// Padded with `value`: `padding[i]` is (before, after) for dimension `i`.
  public func padded(_ padding: [(Int, Int)], value: Float = 0) -> Tensor {
    precondition(padding.count == rank, "padding needs one pair per dimension of \(shape)")
    precondition(padding.allSatisfy { $0.0 >= 0 && $0.1 >= 0 }, "negative padding \(padding)")
    let outShape = zip(shape, padding).map { $0 + $1.0 + $1.1 }
    let outStrides = contiguousStrides(outShape)
    let start = zip(padding, outStrides).map { $0.0 * $1 }.reduce(0, +)
    let plan = StridedPlan(shape: shape, strides: [outStrides, contiguousStrides(shape)])
    let result = Tensor(shape: outShape) { out in
      out.initialize(repeating: value)
      withUnsafeBufferPointer { x in
        plan.forEachRun { offsets, n, inner in
          let o = out.baseAddress! + start + offsets[0]
          let s = x.baseAddress! + offsets[1]
          for i in 0..<n { o[i * inner[0]] = s[i * inner[1]] }
        }
      }
    }
    let original = shape
    return result.recorded("pad", [self]) { g in
      var piece = g
      for (axis, (before, _)) in padding.enumerated() { piece = piece.sliced(axis: axis, before..<before + original[axis]) }
      return [piece]
    }
  }
}

/// Copies `source` into `target` along `plan` (output strides first, source strides second).
///
/// The attention blocks permute every activation a few times (heads apart and back, tokens
/// to channels); an element-by-element gather was 3% of w2. Runs that are contiguous in the
/// source are block copies, and a plan whose second-innermost dimension is contiguous in the
/// source is a batch of matrix transposes, done in 8 x 8 blocks (CKernels); both split across
/// threads.
func permute(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, _ plan: StridedPlan) {
  let rank = plan.shape.count
  let (s, t) = (SendableConstPointer(source), SendablePointer(target))
  let sourceStrides = plan.strides[1]
  if rank >= 2 && sourceStrides[rank - 2] == 1 && sourceStrides[rank - 1] != 1 {
    // Each [rows, columns] block of the output reads a [columns, rows] block of the source.
    let (rows, columns) = (plan.shape[rank - 2], plan.shape[rank - 1])
    let outer = StridedPlan(shape: Array(plan.shape.dropLast(2)) + [1], strides: plan.strides.map { Array($0.dropLast(2)) + [0] })
    var blocks: [(Int, Int)] = []
    if rank == 2 {
      blocks = [(0, 0)]
    } else {
      outer.forEachRun { offsets, n, inner in
        for i in 0..<n { blocks.append((offsets[0] + i * inner[0], offsets[1] + i * inner[1])) }
      }
    }
    let columnStride = sourceStrides[rank - 1]
    parallelFor(blocks.count, cost: rows * columns) { range in
      for b in range {
        distill_transpose(s.base + blocks[b].1, columnStride, t.base + blocks[b].0, columns, columns, rows)
      }
    }
    return
  }
  var runs: [(Int, Int)] = []
  var length = 0
  var step = 0
  plan.forEachRun { offsets, n, inner in
    runs.append((offsets[0], offsets[1]))
    length = n
    step = inner[1]
  }
  let (count, stride) = (length, step)
  parallelFor(runs.count, cost: count) { range in
    for r in range {
      let (o, i) = (t.base + runs[r].0, s.base + runs[r].1)
      if stride == 1 {
        o.update(from: i, count: count)
      } else {
        for k in 0..<count { o[k] = i[k * stride] }
      }
    }
  }
}
