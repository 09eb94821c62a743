import DistillCore
import Foundation

/// The configuration of a diffusers `AutoencoderKL` (`vae/config.json`).
public struct AutoencoderKLConfig: Equatable, Sendable {
  public var inChannels = 3
  public var outChannels = 3
  public var latentChannels = 4
  public var blockOutChannels: [Int]
  public var layersPerBlock = 1
  public var normGroups = 32
  public var activation: Activation = .silu
  public var midBlockAttention = true
  public var quantConv = true
  public var postQuantConv = true
  /// Latents for the diffusion model are `scalingFactor · (z − shiftFactor)`.
  public var scalingFactor: Float = 0.18215
  public var shiftFactor: Float = 0

  /// Reads a diffusers `config.json`; every key that changes the computation is read or
  /// refused by name.
  ///
  /// - Throws: ``DistillError`` naming the file and key.
  public static func decode(_ data: Data, source: String) throws -> AutoencoderKLConfig {
    var r = try JSONObjectReader(JSONValue.parse(data, source: source), location: source)
    func fail(_ key: String, _ expected: String) -> DistillError {
      .invalidValue(location: "\(source): \(key)", expected: expected, found: r.object[key]?.summary ?? "nothing")
    }
    if let name = try r.string("_class_name"), name != "AutoencoderKL" { throw fail("_class_name", "\"AutoencoderKL\"") }
    let channels = try r.intArray("block_out_channels") ?? [64]
    guard !channels.isEmpty, channels.allSatisfy({ $0 > 0 }) else { throw fail("block_out_channels", "positive channel counts") }
    var config = AutoencoderKLConfig(blockOutChannels: channels)
    for (key, name) in [("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")] {
      let names = try r.stringArray(key) ?? [String](repeating: name, count: channels.count)
      guard names.count == channels.count, names.allSatisfy({ $0 == name }) else {
        throw fail(key, "\(channels.count) × \"\(name)\" (one per block_out_channels entry)")
      }
    }
    config.inChannels = try r.int("in_channels", default: 3)
    config.outChannels = try r.int("out_channels", default: 3)
    config.latentChannels = try r.int("latent_channels", default: 4)
    config.layersPerBlock = try r.int("layers_per_block", default: 1)
    config.normGroups = try r.int("norm_num_groups", default: 32)
    let act = try r.choice("act_fn", ["silu", "swish", "gelu", "relu"], default: "silu")
    config.activation = act == "gelu" ? .gelu : act == "relu" ? .relu : .silu
    config.midBlockAttention = try r.bool("mid_block_add_attention", default: true)
    config.quantConv = try r.bool("use_quant_conv", default: true)
    config.postQuantConv = try r.bool("use_post_quant_conv", default: true)
    config.scalingFactor = try r.float("scaling_factor", default: 0.18215)
    config.shiftFactor = try r.float("shift_factor", default: 0)
    for key in ["latents_mean", "latents_std"] where r.value(key).map({ $0 != .null }) ?? false {
      throw fail(key, "null (per-channel latent statistics are not read)")
    }
    // Inference-irrelevant: the sample size, precision hints.
    for key in ["sample_size", "force_upcast"] { _ = r.value(key) }
    try r.rejectUnknownKeys { $0.hasPrefix("_") }
    guard [config.inChannels, config.outChannels, config.latentChannels, config.layersPerBlock, config.normGroups]
      .allSatisfy({ $0 >= 1 })
    else { throw fail("in_channels", "positive channel, layer and group counts") }
    for c in channels where c % config.normGroups != 0 {
      throw fail("norm_num_groups", "a divisor of every block_out_channels entry (\(c))")
    }
    return config
  }
}

/// diffusers' `AutoencoderKL`: an encoder from images to a diagonal Gaussian over latents
/// (`latent_dist.mean`, `.logvar`, clamped to [−30, 20] as diffusers does) and a decoder from
/// latents back to images. Weight keys are diffusers' (`encoder.down_blocks.0.resnets.0.conv1.weight`,
/// `quant_conv.weight`, ...). ``encode(_:)`` and ``decode(_:)`` are the network's own; latents
/// for a diffusion model are scaled by ``AutoencoderKLConfig/scalingFactor``
/// (``latents(from:)``, ``decodeLatents(_:)``).
public final class AutoencoderKL: Module {
  public let config: AutoencoderKLConfig
  let encoder: Coder
  let decoder: Coder
  let quantConv: Conv2d?
  let postQuantConv: Conv2d?

  /// The encoder or the decoder: `conv_in`, blocks of residual layers with a resampler between
  /// levels, the mid block (residual, attention, residual), GroupNorm, activation, `conv_out`.
  final class Coder: Module {
    final class Level: Module {
      let resnets: [ResnetBlock2D]
      let resampler: Module?
      init(resnets: [ResnetBlock2D], resampler: Module?, key: String) {
        self.resnets = resnets
        self.resampler = resampler
        super.init()
        register("resnets", indexed(resnets))
        if let resampler { register(key, indexed([resampler])) }
      }
    }

    let convIn: Conv2d
    let levels: [Level]
    let midFirst: ResnetBlock2D
    let midAttention: AttentionBlock?
    let midSecond: ResnetBlock2D
    let normOut: GroupNorm
    let convOut: Conv2d
    let activation: Activation

    init(_ c: AutoencoderKLConfig, decoding: Bool, using rng: inout RandomGenerator) {
      let eps: Float = 1e-6
      func resnet(_ input: Int, _ output: Int) -> ResnetBlock2D {
        ResnetBlock2D(
          inputChannels: input, outputChannels: output, groups: c.normGroups, eps: eps, activation: c.activation,
          timeEmbedding: nil, using: &rng)
      }
      let channels = decoding ? Array(c.blockOutChannels.reversed()) : c.blockOutChannels
      let top = channels[0]
      convIn = Conv2d(
        inputChannels: decoding ? c.latentChannels : c.inChannels, outputChannels: top, kernel: 3, padding: 1, using: &rng)
      var levels: [Level] = []
      var previous = top
      for (i, width) in channels.enumerated() {
        let last = i == channels.count - 1
        let count = decoding ? c.layersPerBlock + 1 : c.layersPerBlock
        let resnets = (0..<count).map { j in resnet(j == 0 ? previous : width, width) }
        let resampler: Module? =
          last ? nil : decoding ? Upsample2D(channels: width, using: &rng) : Downsample2D(channels: width, padding: 0, using: &rng)
        levels.append(Level(resnets: resnets, resampler: resampler, key: decoding ? "upsamplers" : "downsamplers"))
        previous = width
      }
      // The mid block works at the deepest level: the encoder's last, the decoder's first.
      let deepest = c.blockOutChannels.last!
      midFirst = resnet(deepest, deepest)
      midAttention =
        c.midBlockAttention
        ? AttentionBlock(channels: deepest, headDimension: deepest, normGroups: c.normGroups, eps: eps, using: &rng) : nil
      midSecond = resnet(deepest, deepest)
      normOut = GroupNorm(groups: c.normGroups, channels: channels.last!, eps: eps)
      convOut = Conv2d(
        inputChannels: channels.last!, outputChannels: decoding ? c.outChannels : 2 * c.latentChannels, kernel: 3,
        padding: 1, using: &rng)
      activation = c.activation
      self.levels = levels
      super.init()
      register("conv_in", convIn)
      register(decoding ? "up_blocks" : "down_blocks", indexed(levels))
      let mid = Module()
      mid.register("resnets", indexed([midFirst, midSecond]))
      if let midAttention { mid.register("attentions", indexed([midAttention])) }
      register("mid_block", mid)
      register("conv_norm_out", normOut)
      register("conv_out", convOut)
    }

    func mid(_ x: Tensor) -> Tensor {
      let h = midFirst(x, nil)
      return midSecond(midAttention.map { $0(h) } ?? h, nil)
    }

    func callAsFunction(_ x: Tensor, decoding: Bool) -> Tensor {
      var h = convIn(x)
      if decoding { h = mid(h) }
      for level in levels {
        for resnet in level.resnets { h = resnet(h, nil) }
        switch level.resampler {
        case let down as Downsample2D: h = down(h)
        case let up as Upsample2D: h = up(h)
        default: break
        }
      }
      if !decoding { h = mid(h) }
      return convOut(normOut(h, then: activation))
    }
  }

  public init(config: AutoencoderKLConfig, using rng: inout RandomGenerator) {
    self.config = config
    encoder = Coder(config, decoding: false, using: &rng)
    decoder = Coder(config, decoding: true, using: &rng)
    let z = config.latentChannels
    quantConv = config.quantConv ? Conv2d(inputChannels: 2 * z, outputChannels: 2 * z, kernel: 1, using: &rng) : nil
    postQuantConv = config.postQuantConv ? Conv2d(inputChannels: z, outputChannels: z, kernel: 1, using: &rng) : nil
    super.init()
    register("encoder", encoder)
    register("decoder", decoder)
    if let quantConv { register("quant_conv", quantConv) }
    if let postQuantConv { register("post_quant_conv", postQuantConv) }
  }

  /// The posterior of images `x` `[N, inChannels, H, W]` (H, W multiples of 2^(levels−1)):
  /// its mean and log-variance, each `[N, latentChannels, h, w]`.
  public func encode(_ x: Tensor) -> (mean: Tensor, logVariance: Tensor) {
    var moments = encoder(x, decoding: false)
    if let quantConv { moments = quantConv(moments) }
    let z = config.latentChannels
    let parts = moments.split([z, z], axis: 1)
    return (parts[0], parts[1].clamp(min: -30, max: 20))
  }

  /// Images for latents `z` `[N, latentChannels, h, w]` (unscaled: the decoder's own input).
  public func decode(_ z: Tensor) -> Tensor {
    decoder(postQuantConv.map { $0(z) } ?? z, decoding: true)
  }

  /// The diffusion model's latents for images: the posterior mean, shifted and scaled.
  public func latents(from images: Tensor) -> Tensor {
    (encode(images).mean - config.shiftFactor) * config.scalingFactor
  }

  /// Images for the diffusion model's latents: unscaled and unshifted, then decoded.
  public func decodeLatents(_ latents: Tensor) -> Tensor { decode(latents / config.scalingFactor + config.shiftFactor) }

  /// Loads a diffusers `vae/` folder (`config.json` and `diffusion_pytorch_model.safetensors`).
  ///
  /// - Throws: ``DistillError`` naming the file and key: a missing file, an unsupported config,
  ///   weights that do not fit.
  public static func load(folder: String) throws -> AutoencoderKL {
    try loadModelFolder(
      folder, of: "the autoencoder", weightsFile: UNet2DModel.weightsFileName, decode: AutoencoderKLConfig.decode
    ) { AutoencoderKL(config: $0, using: &$1) }
  }
}
