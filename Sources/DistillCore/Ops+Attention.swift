import CKernels

/// How ``Tensor/attention(query:key:value:heads:scale:mask:)`` computes (chosen by
/// ``Tensor/attentionPath(recording:masked:n:heads:lq:lk:)``; tests force each).
enum AttentionPath: Equatable {
  /// CKernels' `attention.c`: blocks of keys with an online softmax, no score matrix.
  case fused
  /// The score matrix a block of query rows at a time (at most
  /// ``Tensor/attentionScoreBlockBytes`` of scores), nothing recorded.
  case blocked
  /// The whole score matrix, recorded for gradients.
  case whole
}

extension Tensor {
  /// Multi-head scaled dot-product attention, `softmax(scale · q kᵀ + mask) v` per head:
  /// `query` `[N, Lq, width]`, `key` and `value` `[N, Lk, width]`, each head the next
  /// `width / heads` channels of all three; `mask` is added to every head's `[Lq, Lk]` scores.
  /// The result is `[N, Lq, width]`, heads side by side (the input of an output projection).
  ///
  /// When nothing is recorded (no input requires gradients, or ``withoutGradients(_:)``), there
  /// is no mask and products run in float32 on Distillery's kernel, the scores are never
  /// written: CKernels' fused kernel keeps a block of them in L1 (flash attention's online
  /// softmax; Stable Diffusion 1.5's 64 x 64 level would otherwise write 8 x 4096 x 4096 scores,
  /// 512 MiB). It sums in another order than the recorded path (within 2e-6 of it in
  /// `AttentionTests`). Otherwise the scores are a product, a softmax and a product, recorded
  /// for gradients, or without gradients a block of query rows at a time.
  public static func attention(
    query: Tensor, key: Tensor, value: Tensor, heads: Int, scale: Float, mask: Tensor? = nil
  ) -> Tensor {
    precondition(query.rank == 3 && key.rank == 3 && value.shape == key.shape, "attention: query \(query.shape), key \(key.shape), value \(value.shape)")
    let (n, lq, width) = (query.shape[0], query.shape[1], query.shape[2])
    precondition(key.shape[0] == n && key.shape[2] == width, "attention: key \(key.shape) does not fit query \(query.shape)")
    precondition(heads > 0 && width % heads == 0, "attention: \(heads) heads do not divide a width of \(width)")
    let recording = GradientMode.isEnabled && [query, key, value].contains { $0.requiresGrad }
    let path = attentionPath(recording: recording, masked: mask != nil, n: n, heads: heads, lq: lq, lk: key.shape[1])
    return attention(query: query, key: key, value: value, heads: heads, scale: scale, mask: mask, path: path)
  }

  /// The most bytes of scores the blocked path writes at once.
  static let attentionScoreBlockBytes = 32 << 20

  static func attentionPath(recording: Bool, masked: Bool, n: Int, heads: Int, lq: Int, lk: Int) -> AttentionPath {
    if recording || GradientMode.usesRecordedKernels { return .whole }
    if !masked && GemmKernel.isOwn && ComputePrecision.current == .fp32 { return .fused }
    return lq > attentionScoreRows(n: n, heads: heads, lk: lk) ? .blocked : .whole
  }

  static func attentionScoreRows(n: Int, heads: Int, lk: Int) -> Int {
    Swift.max(1, attentionScoreBlockBytes / Swift.max(1, 4 * n * heads * lk))
  }

  static func attention(
    query: Tensor, key: Tensor, value: Tensor, heads: Int, scale: Float, mask: Tensor?, path: AttentionPath
  ) -> Tensor {
    let (n, lq, width) = (query.shape[0], query.shape[1], query.shape[2])
    let lk = key.shape[1]
    let d = width / heads
    if path == .fused {
      precondition(mask == nil && GemmKernel.isOwn, "attention: the fused kernel takes no mask and needs AVX-512")
      return Tensor(shape: [n, lq, width]) { out in
        query.withUnsafeBufferPointer { q in
          key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
              distill_attention_forward(
                GemmKernel.threads(multiplyAdds: 2 * n * lq * lk * width), n, heads, lq, lk, d, scale, q.baseAddress!, width, k.baseAddress!, width, v.baseAddress!, width,
                out.baseAddress!, width)
            }
          }
        }
      }
    }
    func split(_ t: Tensor, _ length: Int) -> Tensor { t.reshaped([n, length, heads, d]).permuted([0, 2, 1, 3]) }
    // Scaling q (L x d) rather than the scores (L x L) saves a pass over, and a copy of, the scores.
    let q = split(query * scale, lq)
    let (k, v) = (split(key, lk), split(value, lk))
    func rows(_ q: Tensor, _ mask: Tensor?) -> Tensor {
      var scores = q.matmul(k, transposeOther: true)
      if let mask { scores = scores + mask }
      return scores.softmax(axis: -1).matmul(v)
    }
    let attended: Tensor
    if path == .blocked {
      let block = attentionScoreRows(n: n, heads: heads, lk: lk)
      attended = Tensor.concat(
        stride(from: 0, to: lq, by: block).map { start in
          let range = start..<Swift.min(lq, start + block)
          let rowMask = mask.map { $0.rank >= 2 && $0.shape[$0.rank - 2] == lq ? $0.sliced(axis: $0.rank - 2, range) : $0 }
          return rows(q.sliced(axis: 2, range), rowMask)
        }, axis: 2)
    } else {
      attended = rows(q, mask)
    }
    return attended.permuted([0, 2, 1, 3]).reshaped([n, lq, width])
  }
}
