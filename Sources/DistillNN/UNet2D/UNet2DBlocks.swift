/// diffusers' `ResnetBlock2D`: two GroupNorm-activation-conv stages with the time embedding
/// added (or applied as scale and shift) in between, and a residual path. Without a time
/// embedding (`temb_channels=None`, as in the VAE's blocks) there is no projection.
final class ResnetBlock2D: Module {
  let norm1: GroupNorm
  let conv1: Conv2d
  let timeProjection: Linear?
  let norm2: GroupNorm
  let conv2: Conv2d
  let shortcut: Conv2d?
  let activation: Activation
  let scaleShift: Bool
  let outputScale: Float

  convenience init(
    inputChannels: Int, outputChannels: Int, config: UNet2DConfig, outputScale: Float = 1,
    using rng: inout RandomGenerator
  ) {
    self.init(
      inputChannels: inputChannels, outputChannels: outputChannels, groups: config.normGroups, eps: config.normEps,
      activation: config.activation, timeEmbedding: config.timeEmbedDimension, scaleShift: config.scaleShift,
      outputScale: outputScale, using: &rng)
  }

  init(
    inputChannels: Int, outputChannels: Int, groups: Int, eps: Float, activation: Activation, timeEmbedding: Int?,
    scaleShift: Bool = false, outputScale: Float = 1, using rng: inout RandomGenerator
  ) {
    norm1 = GroupNorm(groups: groups, channels: inputChannels, eps: eps)
    conv1 = Conv2d(inputChannels: inputChannels, outputChannels: outputChannels, kernel: 3, padding: 1, using: &rng)
    timeProjection = timeEmbedding.map {
      Linear(inputSize: $0, outputSize: scaleShift ? 2 * outputChannels : outputChannels, using: &rng)
    }
    norm2 = GroupNorm(groups: groups, channels: outputChannels, eps: eps)
    conv2 = Conv2d(inputChannels: outputChannels, outputChannels: outputChannels, kernel: 3, padding: 1, using: &rng)
    shortcut =
      inputChannels == outputChannels
      ? nil : Conv2d(inputChannels: inputChannels, outputChannels: outputChannels, kernel: 1, using: &rng)
    self.activation = activation
    self.scaleShift = scaleShift
    self.outputScale = outputScale
    super.init()
    register("norm1", norm1)
    register("conv1", conv1)
    if let timeProjection { register("time_emb_proj", timeProjection) }
    register("norm2", norm2)
    register("conv2", conv2)
    if let shortcut { register("conv_shortcut", shortcut) }
  }

  func callAsFunction(_ x: Tensor, _ embedding: Tensor?) -> Tensor { self(concatenating: [x], embedding) }

  /// The block on the concatenation of `parts` along the channels (the up path's `h` and
  /// skip connection). Under ``ActivationRecompute/selective`` the concatenation and each
  /// convolution's normalised input are not kept but computed again in the backward pass
  /// (``Conv2d/callAsFunction(recomputing:from:_:)``); the values are the same.
  func callAsFunction(concatenating parts: [Tensor], _ embedding: Tensor?) -> Tensor {
    let joined: @Sendable ([Tensor]) -> Tensor = { $0.count == 1 ? $0[0] : Tensor.concat($0, axis: 1) }
    let (norm1, norm2, activation) = (norm1, norm2, activation)
    // Outside `selective` the concatenation is computed once, for both of its readers.
    let inputs = ActivationRecompute.current == .selective ? parts : [joined(parts)]
    var h = conv1(recomputing: inputs, from: norm1) { norm1(joined($0), then: activation) }
    // After the convolutions, as the gradients' order of accumulation depends on it.
    func residual() -> Tensor {
      shortcut.map { shortcut in shortcut(recomputing: inputs) { joined($0) } } ?? joined(inputs)
    }
    guard let timeProjection, let embedding else {
      precondition(timeProjection == nil, "a time-conditioned residual block needs its embedding")
      h = conv2(recomputing: [h], from: norm2) { norm2($0[0], then: activation) }
      let sum = residual() + h
      return outputScale == 1 ? sum : sum / outputScale
    }
    let t = timeProjection(activation(embedding))
    let (n, c) = (t.shape[0], t.shape[1])
    if scaleShift {
      let parts = t.reshaped([n, c, 1, 1]).split([c / 2, c / 2], axis: 1)
      h = conv2(recomputing: [h] + parts, from: norm2) { activation(norm2($0[0]) * ($0[1] + 1) + $0[2]) }
    } else {
      h = conv2(recomputing: [h + t.reshaped([n, c, 1, 1])], from: norm2) { norm2($0[0], then: activation) }
    }
    let sum = residual() + h
    return outputScale == 1 ? sum : sum / outputScale
  }
}

/// diffusers' spatial self-attention of UNet2D blocks (`Attention` with a group norm, a
/// residual connection and `to_q`, `to_k`, `to_v`, `to_out.0` projections) over the image's
/// positions.
final class AttentionBlock: MultiHeadAttention {
  let groupNorm: GroupNorm?
  let outputScale: Float

  init(channels: Int, headDimension: Int?, normGroups: Int?, eps: Float, outputScale: Float = 1, using rng: inout RandomGenerator) {
    groupNorm = normGroups.map { GroupNorm(groups: $0, channels: channels, eps: eps) }
    self.outputScale = outputScale
    super.init(
      width: channels, heads: channels / (headDimension ?? channels), projectionBias: true, keys: .diffusers, using: &rng)
    if let groupNorm { register("group_norm", groupNorm) }
  }

  func callAsFunction(_ x: Tensor) -> Tensor {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let normed = groupNorm.map { $0(x) } ?? x
    let sequence = normed.reshaped([n, c, h * w]).transposed(1, 2)  // [n, L, c]
    let projected = attend(sequence).transposed(1, 2).reshaped([n, c, h, w])
    let sum = projected + x
    return outputScale == 1 ? sum : sum / outputScale
  }
}

/// diffusers' `Downsample2D` with a convolution (key `conv`): stride 2, padding 1, or an
/// asymmetric zero pad on the right and bottom when `padding` is 0.
final class Downsample2D: Module {
  let conv: Conv2d
  let padding: Int

  init(channels: Int, padding: Int, using rng: inout RandomGenerator) {
    conv = Conv2d(inputChannels: channels, outputChannels: channels, kernel: 3, stride: 2, padding: padding, using: &rng)
    self.padding = padding
    super.init()
    register("conv", conv)
  }

  func callAsFunction(_ x: Tensor) -> Tensor {
    guard padding == 0 else { return conv(x) }
    return conv(recomputing: [x]) { $0[0].padded([(0, 0), (0, 0), (0, 1), (0, 1)]) }
  }
}

/// diffusers' `Upsample2D` with a convolution: nearest 2x, then a 3x3 convolution.
final class Upsample2D: Module {
  let conv: Conv2d

  init(channels: Int, using rng: inout RandomGenerator) {
    conv = Conv2d(inputChannels: channels, outputChannels: channels, kernel: 3, padding: 1, using: &rng)
    super.init()
    register("conv", conv)
  }

  func callAsFunction(_ x: Tensor) -> Tensor { conv(recomputing: [x]) { $0[0].upsampleNearest2x() } }
}
