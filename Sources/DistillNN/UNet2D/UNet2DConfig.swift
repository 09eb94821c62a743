import Foundation

/// The configuration of a diffusers `UNet2DModel`, as its `config.json` states it.
///
/// Field names follow Swift style; ``decode(_:source:)`` reads diffusers' snake_case keys with
/// diffusers' defaults and refuses any value this implementation does not compute exactly
/// (see docs/teachers.md for the supported space).
public struct UNet2DConfig: Equatable, Sendable {
  public enum DownBlock: String, Sendable, CaseIterable { case down = "DownBlock2D", attention = "AttnDownBlock2D" }
  public enum UpBlock: String, Sendable, CaseIterable { case up = "UpBlock2D", attention = "AttnUpBlock2D" }

  public var sampleSize: Int?
  public var inChannels = 3
  public var outChannels = 3
  public var centerInputSample = false
  public var timeEmbeddingDimension: Int?
  public var freqShift: Float = 0
  public var flipSinToCos = true
  public var downBlocks: [DownBlock]
  public var upBlocks: [UpBlock]
  public var hasMidBlock = true
  public var blockOutChannels: [Int]
  public var layersPerBlock = 2
  public var midBlockScaleFactor: Float = 1
  public var downsamplePadding = 1
  public var activation: Activation = .silu
  /// Channels per attention head; `nil` is one head over all channels.
  public var attentionHeadDimension: Int? = 8
  public var normGroups = 32
  public var attentionNormGroups: Int?
  public var normEps: Float = 1e-5
  /// `true` for `resnet_time_scale_shift = "scale_shift"` (FiLM), `false` for `"default"` (add).
  public var scaleShift = false
  public var addAttention = true
  /// How class labels condition the network; `nil` for an unconditional one.
  public var classEmbedding: ClassEmbedding?

  /// diffusers' class conditioning (`class_embed_type` with `num_class_embeds`): the embedding
  /// of the labels is added to the time embedding.
  public enum ClassEmbedding: Equatable, Sendable {
    /// A table of `classes` vectors (`class_embed_type` null): labels are class indices.
    case table(classes: Int)
    /// Labels through the timestep's sinusoidal projection and an MLP of their own (`"timestep"`).
    case timestep
    /// Labels are `[N, time_embed_dim]` vectors, added as they are (`"identity"`).
    case identity
  }

  public init(
    sampleSize: Int? = nil, inChannels: Int = 3, outChannels: Int = 3, downBlocks: [DownBlock],
    upBlocks: [UpBlock], blockOutChannels: [Int], layersPerBlock: Int = 2, normGroups: Int = 32,
    attentionHeadDimension: Int? = 8
  ) {
    self.sampleSize = sampleSize
    self.inChannels = inChannels
    self.outChannels = outChannels
    self.downBlocks = downBlocks
    self.upBlocks = upBlocks
    self.blockOutChannels = blockOutChannels
    self.layersPerBlock = layersPerBlock
    self.normGroups = normGroups
    self.attentionHeadDimension = attentionHeadDimension
  }

  /// `time_embedding_dim`, or four times the first block's channels.
  public var timeEmbedDimension: Int { timeEmbeddingDimension ?? 4 * blockOutChannels[0] }

  /// Reads a diffusers `config.json`. `source` names the file in errors.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` naming the key for a
  ///   wrong type, an unsupported value or an unknown key; never a silently different model.
  public static func decode(_ data: Data, source: String) throws -> UNet2DConfig {
    var r = try JSONObjectReader(JSONValue.parse(data, source: source), location: source)
    func unsupported(_ key: String, _ expected: String, _ found: JSONValue?) -> DistillError {
      .invalidValue(location: "\(source): \(key)", expected: expected, found: found?.summary ?? "null")
    }
    if let name = try r.string("_class_name"), name != "UNet2DModel" {
      throw unsupported("_class_name", "\"UNet2DModel\"", .string(name))
    }
    let channels = try r.intArray("block_out_channels") ?? [224, 448, 672, 896]
    guard !channels.isEmpty, channels.allSatisfy({ $0 > 0 }) else { throw unsupported("block_out_channels", "a non-empty array of positive integers", r.object["block_out_channels"]) }
    let downNames = try r.stringArray("down_block_types")
      ?? ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]
    let upNames = try r.stringArray("up_block_types") ?? ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
    let down = try downNames.map { name in
      guard let block = DownBlock(rawValue: name) else {
        throw unsupported("down_block_types", "DownBlock2D or AttnDownBlock2D", .string(name))
      }
      return block
    }
    let up = try upNames.map { name in
      guard let block = UpBlock(rawValue: name) else {
        throw unsupported("up_block_types", "UpBlock2D or AttnUpBlock2D", .string(name))
      }
      return block
    }
    guard down.count == channels.count else {
      throw unsupported("down_block_types", "one block per entry of block_out_channels (\(channels.count))", r.object["down_block_types"])
    }
    guard up.count == channels.count else {
      throw unsupported("up_block_types", "one block per entry of block_out_channels (\(channels.count))", r.object["up_block_types"])
    }
    var config = UNet2DConfig(downBlocks: down, upBlocks: up, blockOutChannels: channels)
    if let size = r.value("sample_size") {
      switch size {
      case .number: config.sampleSize = try r.int("sample_size")
      case .array(let a) where a.count == 2 && a[0] == a[1]:
        config.sampleSize = try r.intArray("sample_size")?.first
      default: throw unsupported("sample_size", "an integer or a square [h, w] pair", size)
      }
    }
    config.inChannels = try r.int("in_channels", default: 3)
    config.outChannels = try r.int("out_channels", default: 3)
    config.centerInputSample = try r.bool("center_input_sample", default: false)
    // diffusers: `time_embedding_dim or 4 * block_out_channels[0]`, so 0 means the default.
    config.timeEmbeddingDimension = try r.int("time_embedding_dim").flatMap { $0 == 0 ? nil : $0 }
    config.freqShift = try r.float("freq_shift", default: 0)
    config.flipSinToCos = try r.bool("flip_sin_to_cos", default: true)
    config.layersPerBlock = try r.int("layers_per_block", default: 2)
    config.midBlockScaleFactor = try r.float("mid_block_scale_factor", default: 1)
    config.downsamplePadding = try r.int("downsample_padding", default: 1)
    config.normGroups = try r.int("norm_num_groups", default: 32)
    config.attentionNormGroups = try r.int("attn_norm_num_groups")
    config.normEps = try r.float("norm_eps", default: 1e-5)
    config.addAttention = try r.bool("add_attention", default: true)
    config.attentionHeadDimension = r.object["attention_head_dim"] == nil ? 8 : try r.int("attention_head_dim")
    config.scaleShift = try r.choice("resnet_time_scale_shift", ["default", "scale_shift"], default: "default") == "scale_shift"
    _ = try r.choice("mid_block_type", ["UNetMidBlock2D"], default: "UNetMidBlock2D")
    config.hasMidBlock = r.object["mid_block_type"] != .null
    let act = try r.choice("act_fn", ["silu", "swish", "gelu", "relu"], default: "silu")
    config.activation = act == "gelu" ? .gelu : act == "relu" ? .relu : .silu
    _ = try r.choice("time_embedding_type", ["positional"], default: "positional")
    _ = try r.choice("downsample_type", ["conv"], default: "conv")
    _ = try r.choice("upsample_type", ["conv"], default: "conv")
    _ = try r.double("dropout")  // identity at inference; training from this config uses none
    let classes = try r.int("num_class_embeds")
    switch try r.string("class_embed_type") {
    case nil: config.classEmbedding = classes.map { .table(classes: $0) }
    case "timestep": config.classEmbedding = .timestep
    case "identity": config.classEmbedding = .identity
    case let other?:
      throw unsupported("class_embed_type", "null, \"timestep\" or \"identity\"", .string(other))
    }
    _ = r.value("num_train_timesteps")  // used by "learned" embeddings only
    try r.rejectUnknownKeys { $0.hasPrefix("_") }
    try config.validate(source: source)
    return config
  }

  /// Checks the relations between fields that diffusers assumes.
  public func validate(source: String = "config") throws {
    func fail(_ key: String, _ expected: String, _ found: String) -> DistillError {
      .invalidValue(location: "\(source): \(key)", expected: expected, found: found)
    }
    if layersPerBlock < 1 { throw fail("layers_per_block", "at least 1", String(layersPerBlock)) }
    if normGroups < 1 { throw fail("norm_num_groups", "a positive integer", String(normGroups)) }
    for c in blockOutChannels where c % normGroups != 0 {
      throw fail("norm_num_groups", "a divisor of every block_out_channels entry", "\(normGroups) for \(c) channels")
    }
    if let heads = attentionHeadDimension {
      if heads < 1 { throw fail("attention_head_dim", "a positive integer or null", String(heads)) }
      for (i, c) in blockOutChannels.enumerated()
      where (downBlocks[i] == .attention || upBlocks[blockOutChannels.count - 1 - i] == .attention) && c % heads != 0 {
        throw fail("attention_head_dim", "a divisor of the channels of every attention block", "\(heads) for \(c) channels")
      }
    }
    // The mid-block attention: heads = C // head_dim, and attn_norm_num_groups splits C.
    if let midChannels = blockOutChannels.last, hasMidBlock && addAttention {
      if let heads = attentionHeadDimension, midChannels % heads != 0 {
        throw fail(
          "attention_head_dim", "a divisor of the channels of the mid-block attention",
          "\(heads) for \(midChannels) channels")
      }
      if let groups = attentionNormGroups, groups < 1 || midChannels % groups != 0 {
        throw fail("attn_norm_num_groups", "a divisor of the mid block's channels", "\(groups) for \(midChannels) channels")
      }
    }
    if ![0, 1].contains(downsamplePadding) { throw fail("downsample_padding", "0 or 1", String(downsamplePadding)) }
    if case .table(let classes) = classEmbedding, classes < 1 {
      throw fail("num_class_embeds", "a positive integer or null", String(classes))
    }
    if let dimension = timeEmbeddingDimension, dimension < 1 {
      throw fail("time_embedding_dim", "a positive integer or null", String(dimension))
    }
    if inChannels < 1 || outChannels < 1 { throw fail("in_channels", "positive channel counts", "\(inChannels), \(outChannels)") }
    if blockOutChannels.count > Self.maximumLevels {
      throw fail("block_out_channels", "at most \(Self.maximumLevels) levels", "\(blockOutChannels.count)")
    }
    // Last: the count assumes the relations above. Sizes come from a file, so they are
    // bounded here, before anything allocates a model of them.
    _ = try parameterCount(source: source)
  }
}
