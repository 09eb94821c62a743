import DistillCore

/// Multi-head attention of `q` `[N, Lq, heads·d]` over `k`, `v` `[N, Lk, heads·d]`.
func multiHeadAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, heads: Int) -> Tensor {
  let (n, lq, width) = (q.shape[0], q.shape[1], q.shape[2])
  let lk = k.shape[1]
  let d = width / heads
  func split(_ t: Tensor, _ length: Int) -> Tensor { t.reshaped([n, length, heads, d]).permuted([0, 2, 1, 3]) }
  let scores = split(q * (1 / Float(d).squareRoot()), lq).matmul(split(k, lk), transposeOther: true)
  return scores.softmax(axis: -1).matmul(split(v, lk)).permuted([0, 2, 1, 3]).reshaped([n, lq, width])
}

/// diffusers' `Attention` as a transformer block uses it: `to_q`, `to_k`, `to_v` without bias
/// and `to_out.0` with one; keys and values from `context` (cross-attention) or from the input.
final class ProjectedAttention: Module {
  let query: Linear
  let key: Linear
  let value: Linear
  let output: Linear
  let heads: Int

  init(width: Int, contextWidth: Int, heads: Int, using rng: inout RandomGenerator) {
    query = Linear(inputSize: width, outputSize: width, bias: false, using: &rng)
    key = Linear(inputSize: contextWidth, outputSize: width, bias: false, using: &rng)
    value = Linear(inputSize: contextWidth, outputSize: width, bias: false, using: &rng)
    output = Linear(inputSize: width, outputSize: width, using: &rng)
    self.heads = heads
    super.init()
    register("to_q", query)
    register("to_k", key)
    register("to_v", value)
    register("to_out", indexed([output]))
  }

  func callAsFunction(_ x: Tensor, context: Tensor? = nil) -> Tensor {
    let source = context ?? x
    return output(multiHeadAttention(query(x), key(source), value(source), heads: heads))
  }
}

/// diffusers' `BasicTransformerBlock` (the default kind): pre-norm self-attention,
/// cross-attention to the encoder's hidden states, and a GEGLU feed-forward of four times the
/// width, each with a residual connection.
final class BasicTransformerBlock: Module {
  let norm1: LayerNorm
  let selfAttention: ProjectedAttention
  let norm2: LayerNorm
  let crossAttention: ProjectedAttention
  let norm3: LayerNorm
  let gegluProjection: Linear
  let feedForwardOut: Linear

  init(width: Int, contextWidth: Int, heads: Int, using rng: inout RandomGenerator) {
    norm1 = LayerNorm(size: width)
    selfAttention = ProjectedAttention(width: width, contextWidth: width, heads: heads, using: &rng)
    norm2 = LayerNorm(size: width)
    crossAttention = ProjectedAttention(width: width, contextWidth: contextWidth, heads: heads, using: &rng)
    norm3 = LayerNorm(size: width)
    gegluProjection = Linear(inputSize: width, outputSize: 8 * width, using: &rng)
    feedForwardOut = Linear(inputSize: 4 * width, outputSize: width, using: &rng)
    super.init()
    register("norm1", norm1)
    register("attn1", selfAttention)
    register("norm2", norm2)
    register("attn2", crossAttention)
    register("norm3", norm3)
    let geglu = Module()
    geglu.register("proj", gegluProjection)
    let net = Module()
    net.register("0", geglu)
    net.register("2", feedForwardOut)
    let ff = Module()
    ff.register("net", net)
    register("ff", ff)
  }

  func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
    var h = x + selfAttention(norm1(x))
    h = h + crossAttention(norm2(h), context: context)
    let parts = gegluProjection(norm3(h)).split([4 * h.shape[2], 4 * h.shape[2]], axis: 2)
    return h + feedForwardOut(parts[0] * parts[1].gelu())
  }
}

/// diffusers' `Transformer2DModel` over an image's positions: GroupNorm (eps 1e-6), a 1×1
/// convolution in and out (or linear projections with `use_linear_projection`), transformer
/// blocks between, and a residual connection.
final class Transformer2D: Module {
  /// A projection in or out: a linear layer on the sequence, or a 1×1 convolution on the image.
  enum Projection {
    case linear(Linear)
    case convolution(Conv2d)

    var module: Module {
      switch self {
      case .linear(let layer): layer
      case .convolution(let layer): layer
      }
    }
  }

  let norm: GroupNorm
  let projectIn: Projection
  let projectOut: Projection
  let blocks: [BasicTransformerBlock]

  init(
    channels: Int, heads: Int, layers: Int, contextWidth: Int, groups: Int, linear: Bool,
    using rng: inout RandomGenerator
  ) {
    norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
    func projection() -> Projection {
      linear
        ? .linear(Linear(inputSize: channels, outputSize: channels, using: &rng))
        : .convolution(Conv2d(inputChannels: channels, outputChannels: channels, kernel: 1, using: &rng))
    }
    projectIn = projection()
    blocks = (0..<layers).map { _ in
      BasicTransformerBlock(width: channels, contextWidth: contextWidth, heads: heads, using: &rng)
    }
    projectOut = projection()
    super.init()
    register("norm", norm)
    register("proj_in", projectIn.module)
    register("transformer_blocks", indexed(blocks))
    register("proj_out", projectOut.module)
  }

  func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
    let (n, c, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    func toSequence(_ t: Tensor) -> Tensor { t.permuted([0, 2, 3, 1]).reshaped([n, height * width, c]) }
    func toImage(_ t: Tensor) -> Tensor { t.reshaped([n, height, width, c]).permuted([0, 3, 1, 2]) }
    var h: Tensor
    switch projectIn {
    case .linear(let layer): h = layer(toSequence(norm(x)))
    case .convolution(let layer): h = toSequence(layer(norm(x)))
    }
    for block in blocks { h = block(h, context: context) }
    switch projectOut {
    case .linear(let layer): return toImage(layer(h)) + x
    case .convolution(let layer): return layer(toImage(h)) + x
    }
  }
}
