import DistillCore

/// Multi-head attention with learnt projections, on sequences `[N, L, width]`: the queries from
/// the input, the keys and values from `context` (cross-attention) or the input itself, one
/// output projection. The projections are named as the checkpoints it reads name them.
public class MultiHeadAttention: Module {
  /// The state-dict names of the four projections.
  public enum Keys: Sendable {
    /// diffusers' `Attention`: `to_q`, `to_k`, `to_v`, `to_out.0`.
    case diffusers
    /// transformers' `CLIPAttention`: `q_proj`, `k_proj`, `v_proj`, `out_proj`.
    case clip
  }

  let query: Linear
  let key: Linear
  let value: Linear
  let output: Linear
  let heads: Int

  /// - Parameter projectionBias: whether the query, key and value projections have a bias (the
  ///   output projection always has one).
  public init(
    width: Int, contextWidth: Int? = nil, heads: Int, projectionBias: Bool, keys: Keys, using rng: inout RandomGenerator
  ) {
    precondition(width % heads == 0, "\(heads) heads do not divide a width of \(width)")
    query = Linear(inputSize: width, outputSize: width, bias: projectionBias, using: &rng)
    key = Linear(inputSize: contextWidth ?? width, outputSize: width, bias: projectionBias, using: &rng)
    value = Linear(inputSize: contextWidth ?? width, outputSize: width, bias: projectionBias, using: &rng)
    output = Linear(inputSize: width, outputSize: width, using: &rng)
    self.heads = heads
    super.init()
    switch keys {
    case .diffusers:
      for (name, layer) in [("to_q", query), ("to_k", key), ("to_v", value)] { register(name, layer) }
      register("to_out", indexed([output]))
    case .clip:
      for (name, layer) in [("q_proj", query), ("k_proj", key), ("v_proj", value), ("out_proj", output)] {
        register(name, layer)
      }
    }
  }

  /// `softmax(q kᵀ/√d + mask) v` per head, projected: `x` `[N, L, width]`, `context`
  /// `[N, Lc, contextWidth]`, `mask` added to every head's `[L, Lc]` scores.
  public func attend(_ x: Tensor, context: Tensor? = nil, mask: Tensor? = nil) -> Tensor {
    let source = context ?? x
    let (n, lq, width) = (x.shape[0], x.shape[1], x.shape[2])
    let lk = source.shape[1]
    let d = width / heads
    func split(_ t: Tensor, _ length: Int) -> Tensor { t.reshaped([n, length, heads, d]).permuted([0, 2, 1, 3]) }
    // Scaling q (L x d) rather than the scores (L x L) saves a pass over, and a copy of, the scores.
    let q = split(query(x) * (1 / Float(d).squareRoot()), lq)
    let (k, v) = (split(key(source), lk), split(value(source), lk))
    func rows(_ q: Tensor, _ mask: Tensor?) -> Tensor {
      var scores = q.matmul(k, transposeOther: true)
      if let mask { scores = scores + mask }
      return scores.softmax(axis: -1).matmul(v)
    }
    // Without gradients nothing keeps the scores, so long sequences (Stable Diffusion's 64 x 64
    // level: 8 x 4096 x 4096 scores, 512 MiB, and as much again for their softmax) go through
    // in blocks of query rows whose scores take at most `Self.scoreBlockBytes`.
    let block = Swift.max(1, Self.scoreBlockBytes / Swift.max(1, 4 * n * heads * lk))
    let attended: Tensor
    if lq > block, !GradientMode.isEnabled {
      attended = Tensor.concat(
        stride(from: 0, to: lq, by: block).map { start in
          let range = start..<Swift.min(lq, start + block)
          let rowMask = mask.map { $0.rank >= 2 && $0.shape[$0.rank - 2] == lq ? $0.sliced(axis: $0.rank - 2, range) : $0 }
          return rows(q.sliced(axis: 2, range), rowMask)
        }, axis: 2)
    } else {
      attended = rows(q, mask)
    }
    return output(attended.permuted([0, 2, 1, 3]).reshaped([n, lq, width]))
  }

  /// The most bytes of scores a no-gradient pass writes at once (see ``attend(_:context:mask:)``).
  static let scoreBlockBytes = 32 << 20
}
