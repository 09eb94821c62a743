import DistillCore
import Foundation

/// A diffusers-compatible `UNet2DConditionModel` (Stable Diffusion's UNet): the same
/// parameters under the same state-dict keys, computing the same function for the supported
/// configurations (``UNet2DConditionConfig``): residual blocks with the time embedding,
/// `Transformer2DModel`s with self- and cross-attention to the text encoder's hidden states at
/// the levels whose blocks are `CrossAttn…`, a `UNetMidBlock2DCrossAttn`, and skip connections.
public final class UNet2DConditionModel: Module {
  public let config: UNet2DConditionConfig
  let convIn: Conv2d
  let timeEmbedding: TimestepEmbedding
  let downBlocks: [Level<Downsample2D>]
  let midResnets: [ResnetBlock2D]
  let midAttention: Transformer2D?
  let upBlocks: [Level<Upsample2D>]
  let normOut: GroupNorm
  let convOut: Conv2d

  /// A down or up block: resnets, each followed by a transformer at a cross-attention level,
  /// then the resampler.
  final class Level<Resampler: Module>: Module {
    let resnets: [ResnetBlock2D]
    let attentions: [Transformer2D]
    let resampler: Resampler?

    init(resnets: [ResnetBlock2D], attentions: [Transformer2D], resampler: Resampler?, key: String) {
      self.resnets = resnets
      self.attentions = attentions
      self.resampler = resampler
      super.init()
      register("resnets", indexed(resnets))
      if !attentions.isEmpty { register("attentions", indexed(attentions)) }
      if let resampler { register(key, indexed([resampler])) }
    }

    /// Resnet `j` (and its transformer) on the channels of `h` (one tensor, or the up path's
    /// two to concatenate), each a block ``Module/recomputable(_:_:)`` may recompute.
    func layer(_ j: Int, _ h: [Tensor], _ embedding: Tensor, _ context: Tensor) -> Tensor {
      let resnet = resnets[j]
      let out = resnet.recomputable(h + [embedding]) { xs in
        resnet(concatenating: Array(xs.dropLast()), xs.last!)
      }
      guard !attentions.isEmpty else { return out }
      let attention = attentions[j]
      return attention.recomputable([out, context], attention: true) { attention($0[0], context: $0[1]) }
    }
  }

  /// A freshly initialised model of `config` (drawn in diffusers' module order).
  public init(config: UNet2DConditionConfig, using rng: inout RandomGenerator) {
    self.config = config
    let channels = config.blockOutChannels
    let levels = channels.count
    let embed = config.timeEmbedDimension
    func resnet(_ input: Int, _ output: Int, scale: Float = 1) -> ResnetBlock2D {
      ResnetBlock2D(
        inputChannels: input, outputChannels: output, groups: config.normGroups, eps: config.normEps,
        activation: .silu, timeEmbedding: embed, outputScale: scale, using: &rng)
    }
    func transformer(_ c: Int, level: Int) -> Transformer2D {
      Transformer2D(
        channels: c, heads: config.heads[level], layers: config.transformerLayers[level],
        contextWidth: config.crossAttentionDimension, groups: config.normGroups, linear: config.linearProjection,
        using: &rng)
    }
    convIn = Conv2d(inputChannels: config.inChannels, outputChannels: channels[0], kernel: 3, padding: 1, using: &rng)
    timeEmbedding = TimestepEmbedding(
      channels: channels[0], dimension: embed, flipSinToCos: config.flipSinToCos, frequencyShift: config.freqShift,
      using: &rng)

    var downs: [Level<Downsample2D>] = []
    var previous = channels[0]
    for (i, c) in channels.enumerated() {
      var resnets: [ResnetBlock2D] = []
      var attentions: [Transformer2D] = []
      for j in 0..<config.layersPerBlock {
        resnets.append(resnet(j == 0 ? previous : c, c))
        if config.crossAttentionDown[i] { attentions.append(transformer(c, level: i)) }
      }
      let down = i == levels - 1 ? nil : Downsample2D(channels: c, padding: config.downsamplePadding, using: &rng)
      downs.append(Level(resnets: resnets, attentions: attentions, resampler: down, key: "downsamplers"))
      previous = c
    }
    downBlocks = downs

    let deepest = channels[levels - 1]
    if config.hasMidBlock {
      let scale = config.midBlockScaleFactor
      let first = resnet(deepest, deepest, scale: scale)
      midAttention = transformer(deepest, level: levels - 1)
      midResnets = [first, resnet(deepest, deepest, scale: scale)]
    } else {
      (midResnets, midAttention) = ([], nil)
    }

    var ups: [Level<Upsample2D>] = []
    let reversed = Array(channels.reversed())
    for (i, c) in reversed.enumerated() {
      let before = i == 0 ? reversed[0] : reversed[i - 1]
      let skipInput = reversed[Swift.min(i + 1, levels - 1)]
      let level = levels - 1 - i
      var resnets: [ResnetBlock2D] = []
      var attentions: [Transformer2D] = []
      for j in 0...config.layersPerBlock {
        resnets.append(resnet((j == 0 ? before : c) + (j == config.layersPerBlock ? skipInput : c), c))
        if config.crossAttentionUp[i] { attentions.append(transformer(c, level: level)) }
      }
      let up = i == levels - 1 ? nil : Upsample2D(channels: c, using: &rng)
      ups.append(Level(resnets: resnets, attentions: attentions, resampler: up, key: "upsamplers"))
    }
    upBlocks = ups
    normOut = GroupNorm(groups: config.normGroups, channels: channels[0], eps: config.normEps)
    convOut = Conv2d(inputChannels: channels[0], outputChannels: config.outChannels, kernel: 3, padding: 1, using: &rng)

    super.init()
    register("conv_in", convIn)
    register("time_embedding", timeEmbedding)
    register("down_blocks", indexed(downBlocks))
    if let midAttention {
      let mid = Module()
      mid.register("resnets", indexed(midResnets))
      mid.register("attentions", indexed([midAttention]))
      register("mid_block", mid)
    }
    register("up_blocks", indexed(upBlocks))
    register("conv_norm_out", normOut)
    register("conv_out", convOut)
  }

  /// The network's output (`UNet2DConditionModel(x, t, encoder_hidden_states).sample`) for `x`
  /// `[N, inChannels, H, W]`, one timestep per sample and the text encoder's hidden states
  /// `[N, L, cross_attention_dim]`.
  public func callAsFunction(_ x: Tensor, timesteps: [Float], encoderHiddenStates context: Tensor) -> Tensor {
    let encoded = encode(x, timesteps: timesteps, context: context)
    var (h, skips) = (encoded.bottleneck, encoded.skips)
    for block in upBlocks {
      for j in block.resnets.indices {
        h = block.layer(j, [h, skips.removeLast()], encoded.embedding, context)
      }
      if let up = block.resampler { h = up(h) }
    }
    let normOut = normOut
    return convOut(recomputing: [h], from: normOut) { normOut($0[0], then: .silu) }
  }

  /// The down path and the mid block: the time embedding, the skip activations, each down
  /// block's output (after its downsampler) and the mid block's output (the last down block's
  /// without a mid block).
  func encode(_ x: Tensor, timesteps: [Float], context: Tensor) -> (
    embedding: Tensor, skips: [Tensor], blockOutputs: [Tensor], bottleneck: Tensor
  ) {
    let n = x.shape[0]
    precondition(x.rank == 4 && x.shape[1] == config.inChannels, "UNet input \(x.shape) does not have \(config.inChannels) channels")
    precondition(timesteps.count == n, "\(timesteps.count) timesteps for a batch of \(n)")
    precondition(
      context.rank == 3 && context.shape[0] == n && context.shape[2] == config.crossAttentionDimension,
      "encoder hidden states \(context.shape) for a batch of \(n) of width \(config.crossAttentionDimension)")
    let embedding = timeEmbedding(timesteps)
    var h = convIn(config.centerInputSample ? x * 2 - 1 : x)
    var skips = [h]
    var blockOutputs: [Tensor] = []
    for block in downBlocks {
      for j in block.resnets.indices {
        h = block.layer(j, [h], embedding, context)
        skips.append(h)
      }
      if let down = block.resampler {
        h = down(h)
        skips.append(h)
      }
      blockOutputs.append(h)
    }
    if let midAttention {
      let (first, second) = (midResnets[0], midResnets[1])
      h = first.recomputable([h, embedding]) { first($0[0], $0[1]) }
      h = midAttention.recomputable([h, context], attention: true) { midAttention($0[0], context: $0[1]) }
      h = second.recomputable([h, embedding]) { second($0[0], $0[1]) }
    }
    return (embedding, skips, blockOutputs, h)
  }

  /// The encoder's activations for discriminators (as ``UNet2DModel``'s ``FeatureTapping``),
  /// with the prompts' hidden states `[N, L, cross_attention_dim]`: each down block's output
  /// and the mid block's output; the up blocks do not run.
  public func features(_ x: Tensor, timesteps: [Float], encoderHiddenStates context: Tensor) -> NetworkFeatures {
    let encoded = encode(x, timesteps: timesteps, context: context)
    return NetworkFeatures(encoder: encoded.blockOutputs, bottleneck: encoded.bottleneck)
  }

  /// Loads a diffusers `unet/` folder (`config.json` and `diffusion_pytorch_model.safetensors`).
  ///
  /// - Throws: ``DistillError`` naming the file and key: a missing file, an unsupported config,
  ///   weights that do not fit.
  public static func load(folder: String) throws -> UNet2DConditionModel {
    try loadModelFolder(
      folder, of: "the UNet", weightsFile: UNet2DModel.weightsFileName, decode: UNet2DConditionConfig.decode
    ) { UNet2DConditionModel(config: $0, using: &$1) }
  }
}
