extension Tensor {
  /// Rows `indices` of the first dimension, in order (PyTorch's `index_select(0, ...)`).
  /// The gradient adds back into the selected rows, repeated rows summing.
  public func gatheringRows(_ indices: [Int]) -> Tensor {
    precondition(rank >= 1, "gatheringRows needs at least one dimension")
    let rows = shape[0]
    precondition(indices.allSatisfy { (0..<rows).contains($0) }, "row index out of range 0..<\(rows)")
    let width = count / Swift.max(rows, 1)
    let result = Tensor(shape: [indices.count] + shape.dropFirst()) { out in
      withUnsafeBufferPointer { x in
        for (i, row) in indices.enumerated() {
          (out.baseAddress! + i * width).update(from: x.baseAddress! + row * width, count: width)
        }
      }
    }
    let original = shape
    return result.recorded("gatherRows", [self]) { g in
      var grad = Tensor.zeros(original)
      grad.withUnsafeMutableBufferPointer { dst in
        g.withUnsafeBufferPointer { src in
          for (i, row) in indices.enumerated() {
            let d = dst.baseAddress! + row * width
            let s = src.baseAddress! + i * width
            for j in 0..<width { d[j] += s[j] }
          }
        }
      }
      return [grad]
    }
  }
}
