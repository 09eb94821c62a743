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
  /// `[N, Lc, contextWidth]`, `mask` added to every head's `[L, Lc]` scores
  /// (``Tensor/attention(query:key:value:heads:scale:mask:)``).
  public func attend(_ x: Tensor, context: Tensor? = nil, mask: Tensor? = nil) -> Tensor {
    let source = context ?? x
    let scale = 1 / Float(x.shape[2] / heads).squareRoot()
    return output(
      Tensor.attention(query: query(x), key: key(source), value: value(source), heads: heads, scale: scale, mask: mask))
  }
}
