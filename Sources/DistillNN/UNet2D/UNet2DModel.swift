/// A diffusers-compatible `UNet2DModel`: the same parameters under the same state-dict keys,
/// computing the same function (see docs/teachers.md for the supported configurations).
///
/// ```swift
/// let unet = try UNet2DModel.load(folder: "teacher/")        // config.json + safetensors
/// let epsilon = unet(noisy, timesteps: [999, 500])           // [N, C, H, W]
/// ```
public final class UNet2DModel: Module {
  public let config: UNet2DConfig
  let convIn: Conv2d
  let timeEmbedding: TimestepEmbedding
  /// The class embedding: an `Embedding` (a table) or a time-embedding-like MLP; none for
  /// `identity` or an unconditional model.
  let classTable: Embedding?
  let classMLP: TimestepEmbedding?
  let downBlocks: [Block<Downsample2D>]
  let midBlock: MidBlock?
  let upBlocks: [Block<Upsample2D>]
  let normOut: GroupNorm
  let convOut: Conv2d

  /// A down block (resampler `Downsample2D`, key `downsamplers`) or an up block (`Upsample2D`,
  /// `upsamplers`): its resnets, its attentions when it has them, and its resampler.
  final class Block<Resampler: Module>: Module {
    let resnets: [ResnetBlock2D]
    let attentions: [AttentionBlock]
    let resampler: Resampler?

    /// A resnet from each of `inputs` channels to `channels`, each followed by an attention
    /// block when `attention`, then the resampler `resample` makes: drawn in diffusers' order.
    init(
      inputs: [Int], channels: Int, attention: Bool, config: UNet2DConfig, key: String,
      using rng: inout RandomGenerator, _ resample: (inout RandomGenerator) -> Resampler?
    ) {
      var resnets: [ResnetBlock2D] = []
      var attentions: [AttentionBlock] = []
      for input in inputs {
        resnets.append(ResnetBlock2D(inputChannels: input, outputChannels: channels, config: config, using: &rng))
        if attention {
          attentions.append(
            AttentionBlock(
              channels: channels, headDimension: config.attentionHeadDimension, normGroups: config.normGroups,
              eps: config.normEps, using: &rng))
        }
      }
      self.resnets = resnets
      self.attentions = attentions
      resampler = resample(&rng)
      super.init()
      register("resnets", indexed(resnets))
      if !attentions.isEmpty { register("attentions", indexed(attentions)) }
      if let resampler { register(key, indexed([resampler])) }
    }
  }

  final class MidBlock: Module {
    let first: ResnetBlock2D
    let attention: AttentionBlock?
    let second: ResnetBlock2D

    init(first: ResnetBlock2D, attention: AttentionBlock?, second: ResnetBlock2D) {
      self.first = first
      self.attention = attention
      self.second = second
      super.init()
      register("resnets", indexed([first, second]))
      if let attention { register("attentions", indexed([attention])) }
    }
  }

  /// A freshly initialised model of `config` (PyTorch's default initialisation).
  public init(config: UNet2DConfig, using rng: inout RandomGenerator) {
    self.config = config
    let channels = config.blockOutChannels
    let levels = channels.count
    let embed = config.timeEmbedDimension
    convIn = Conv2d(inputChannels: config.inChannels, outputChannels: channels[0], kernel: 3, padding: 1, using: &rng)
    func mlp(_ rng: inout RandomGenerator) -> TimestepEmbedding {
      TimestepEmbedding(
        channels: channels[0], dimension: embed, flipSinToCos: config.flipSinToCos, frequencyShift: config.freqShift,
        using: &rng)
    }
    timeEmbedding = mlp(&rng)
    switch config.classEmbedding {
    case .table(let classes)?: (classTable, classMLP) = (Embedding(count: classes, dimension: embed, using: &rng), nil)
    case .timestep?: (classTable, classMLP) = (nil, mlp(&rng))
    case .identity?, nil: (classTable, classMLP) = (nil, nil)
    }

    var downs: [Block<Downsample2D>] = []
    var outputChannels = channels[0]
    for (i, kind) in config.downBlocks.enumerated() {
      let inputChannels = outputChannels
      outputChannels = channels[i]
      downs.append(
        Block(
          inputs: (0..<config.layersPerBlock).map { $0 == 0 ? inputChannels : outputChannels }, channels: outputChannels,
          attention: kind == .attention, config: config, key: "downsamplers", using: &rng
        ) { i == levels - 1 ? nil : Downsample2D(channels: outputChannels, padding: config.downsamplePadding, using: &$0) })
    }
    downBlocks = downs

    if config.hasMidBlock {
      let c = channels[levels - 1]
      let scale = config.midBlockScaleFactor
      let first = ResnetBlock2D(inputChannels: c, outputChannels: c, config: config, outputScale: scale, using: &rng)
      // Mid-block attention: attn_norm_num_groups, else norm_num_groups, but no norm at all
      // with scale-shift time conditioning (diffusers' UNetMidBlock2D).
      let groups = config.attentionNormGroups ?? (config.scaleShift ? nil : config.normGroups)
      let attention =
        config.addAttention
        ? AttentionBlock(
          channels: c, headDimension: config.attentionHeadDimension, normGroups: groups, eps: config.normEps,
          outputScale: scale, using: &rng) : nil
      let second = ResnetBlock2D(inputChannels: c, outputChannels: c, config: config, outputScale: scale, using: &rng)
      midBlock = MidBlock(first: first, attention: attention, second: second)
    } else {
      midBlock = nil
    }

    var ups: [Block<Upsample2D>] = []
    let reversed = Array(channels.reversed())
    for (i, kind) in config.upBlocks.enumerated() {
      let previous = i == 0 ? reversed[0] : reversed[i - 1]
      let output = reversed[i]
      let skipInput = reversed[Swift.min(i + 1, levels - 1)]
      let layers = config.layersPerBlock
      ups.append(
        Block(
          inputs: (0...layers).map { ($0 == 0 ? previous : output) + ($0 == layers ? skipInput : output) },
          channels: output, attention: kind == .attention, config: config, key: "upsamplers", using: &rng
        ) { i == levels - 1 ? nil : Upsample2D(channels: output, using: &$0) })
    }
    upBlocks = ups
    normOut = GroupNorm(groups: config.normGroups, channels: channels[0], eps: config.normEps)
    convOut = Conv2d(inputChannels: channels[0], outputChannels: config.outChannels, kernel: 3, padding: 1, using: &rng)

    super.init()
    register("conv_in", convIn)
    register("time_embedding", timeEmbedding)
    if let classEmbedding = classTable ?? classMLP { register("class_embedding", classEmbedding) }
    register("down_blocks", indexed(downBlocks))
    if let midBlock { register("mid_block", midBlock) }
    register("up_blocks", indexed(upBlocks))
    register("conv_norm_out", normOut)
    register("conv_out", convOut)
  }

  /// The network's output (`UNet2DModel(x, t, class_labels).sample`) for `x` of
  /// `[N, inChannels, H, W]`, one timestep per sample (fractional timesteps are kept, as for a
  /// float tensor in diffusers) and, for a class-conditional model, the labels: `[N]` class
  /// indices (a table), `[N]` values (`timestep`) or `[N, time_embed_dim]` vectors (`identity`).
  public func callAsFunction(_ x: Tensor, timesteps: [Float], classLabels: Tensor? = nil) -> Tensor {
    let encoded = encode(x, timesteps: timesteps, classLabels: classLabels)
    var h = encoded.bottleneck
    var skips = encoded.skips
    for block in upBlocks {
      for (j, resnet) in block.resnets.enumerated() {
        h = resnet.recomputable([h, skips.removeLast(), encoded.embedding]) {
          resnet(concatenating: [$0[0], $0[1]], $0[2])
        }
        if let attention = block.attentions.isEmpty ? nil : block.attentions[j] {
          h = attention.recomputable([h], attention: true) { attention($0[0]) }
        }
      }
      if let upsampler = block.resampler { h = upsampler(h) }
    }
    let normOut = normOut
    return convOut(recomputing: [h], from: normOut) { normOut($0[0], then: .silu) }
  }

  /// The down and mid blocks: the time embedding, every skip connection, each down block's
  /// output and the mid block's (the last down block's output when there is no mid block).
  func encode(_ x: Tensor, timesteps: [Float], classLabels: Tensor? = nil) -> (
    embedding: Tensor, skips: [Tensor], blockOutputs: [Tensor], bottleneck: Tensor
  ) {
    precondition(x.rank == 4 && x.shape[1] == config.inChannels, "UNet2D input \(x.shape) does not have \(config.inChannels) channels")
    precondition(timesteps.count == x.shape[0], "\(timesteps.count) timesteps for a batch of \(x.shape[0])")
    let factor = 1 << (config.blockOutChannels.count - 1)
    precondition(x.shape[2] % factor == 0 && x.shape[3] % factor == 0, "UNet2D input \(x.shape) is not divisible by \(factor)")
    let input = config.centerInputSample ? x * 2 - 1 : x
    var embedding = timeEmbedding(timesteps)
    if config.classEmbedding != nil || classLabels != nil {
      embedding = embedding + classEmbedding(classLabels, count: x.shape[0])
    }

    var h = convIn(input)
    var skips = [h]
    var blockOutputs: [Tensor] = []
    for block in downBlocks {
      for (j, resnet) in block.resnets.enumerated() {
        h = resnet.recomputable([h, embedding]) { resnet($0[0], $0[1]) }
        if let attention = block.attentions.isEmpty ? nil : block.attentions[j] {
          h = attention.recomputable([h], attention: true) { attention($0[0]) }
        }
        skips.append(h)
      }
      if let downsampler = block.resampler {
        h = downsampler(h)
        skips.append(h)
      }
      blockOutputs.append(h)
    }
    if let midBlock {
      h = midBlock.first.recomputable([h, embedding]) { midBlock.first($0[0], $0[1]) }
      if let attention = midBlock.attention {
        h = attention.recomputable([h], attention: true) { attention($0[0]) }
      }
      h = midBlock.second.recomputable([h, embedding]) { midBlock.second($0[0], $0[1]) }
    }
    return (embedding, skips, blockOutputs, h)
  }
}

extension UNet2DModel {
  /// What a class-conditional model adds to the time embedding for `labels`.
  func classEmbedding(_ labels: Tensor?, count: Int) -> Tensor {
    guard let kind = config.classEmbedding else { preconditionFailure("class labels given to a UNet without class embedding") }
    guard let labels else { preconditionFailure("a class-conditional UNet needs class labels") }
    switch kind {
    case .table(let classes):
      precondition(labels.shape == [count], "class labels \(labels.shape) for a batch of \(count)")
      let indices = labels.scalars.map { Int($0) }
      precondition(indices.allSatisfy { (0..<classes).contains($0) }, "class labels outside 0..<\(classes)")
      return classTable!(indices)
    case .timestep:
      precondition(labels.shape == [count], "class labels \(labels.shape) for a batch of \(count)")
      return classMLP!(labels.scalars)
    case .identity:
      precondition(
        labels.shape == [count, config.timeEmbedDimension], "identity class labels must be [\(count), \(config.timeEmbedDimension)]")
      return labels
    }
  }
}

extension UNet2DModel: FeatureTapping {
  /// Each down block's output (after its downsampler) and the mid block's output; the up
  /// blocks do not run.
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?) -> NetworkFeatures {
    let encoded = encode(x, timesteps: timesteps, classLabels: labels.map { Tensor(shape: [$0.count], scalars: $0.map(Float.init)) })
    return NetworkFeatures(encoder: encoded.blockOutputs, bottleneck: encoded.bottleneck)
  }
}

/// A container registering `modules` as `"0"`, `"1"`, ... (PyTorch's `nn.ModuleList`).
func indexed(_ modules: [Module]) -> Module {
  let list = Module()
  for (i, module) in modules.enumerated() { list.register(String(i), module) }
  return list
}
