import DistillCore

/// diffusers' `BasicTransformerBlock` (the default kind): pre-norm self-attention,
/// cross-attention to the encoder's hidden states, and a GEGLU feed-forward of four times the
/// width, each with a residual connection.
final class BasicTransformerBlock: Module {
  let norm1: LayerNorm
  let selfAttention: MultiHeadAttention
  let norm2: LayerNorm
  let crossAttention: MultiHeadAttention
  let norm3: LayerNorm
  let gegluProjection: Linear
  let feedForwardOut: Linear

  init(width: Int, contextWidth: Int, heads: Int, using rng: inout RandomGenerator) {
    norm1 = LayerNorm(size: width)
    selfAttention = MultiHeadAttention(width: width, heads: heads, projectionBias: false, keys: .diffusers, using: &rng)
    norm2 = LayerNorm(size: width)
    crossAttention = MultiHeadAttention(
      width: width, contextWidth: contextWidth, heads: heads, projectionBias: false, keys: .diffusers, using: &rng)
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
    var h = x + selfAttention.attend(norm1(x))
    h = h + crossAttention.attend(norm2(h), context: context)
    return h + feedForwardOut(gegluProjection(norm3(h)).geglu())
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
