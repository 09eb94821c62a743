import DistillCore
import Foundation

/// The configuration of a diffusers `UNet2DConditionModel` (Stable Diffusion's UNet), as its
/// `config.json` states it. ``decode(_:source:)`` reads every key that changes the
/// computation, and refuses by name the values this implementation does not compute (SDXL's
/// added embeddings, class embeddings, other attention kinds).
public struct UNet2DConditionConfig: Equatable, Sendable {
  public var sampleSize: Int?
  public var inChannels = 4
  public var outChannels = 4
  public var centerInputSample = false
  public var flipSinToCos = true
  public var freqShift: Float = 0
  public var blockOutChannels: [Int]
  /// Per level: whether the down block is `CrossAttnDownBlock2D` (else `DownBlock2D`).
  public var crossAttentionDown: [Bool]
  /// Per up block, from the deepest: whether it is `CrossAttnUpBlock2D` (else `UpBlock2D`).
  public var crossAttentionUp: [Bool]
  /// Whether there is a `UNetMidBlock2DCrossAttn`.
  public var hasMidBlock = true
  public var layersPerBlock = 2
  public var downsamplePadding = 1
  public var midBlockScaleFactor: Float = 1
  public var normGroups = 32
  public var normEps: Float = 1e-5
  public var crossAttentionDimension: Int
  /// Attention heads per level (down order); the up blocks use them reversed.
  public var heads: [Int]
  /// Transformer blocks per attention, per level (down order).
  public var transformerLayers: [Int]
  public var linearProjection = false
  public var timeEmbeddingDimension: Int?

  public var timeEmbedDimension: Int { timeEmbeddingDimension ?? 4 * blockOutChannels[0] }

  /// Reads a diffusers `config.json`. `source` names the file in errors.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` naming the key.
  public static func decode(_ data: Data, source: String) throws -> UNet2DConditionConfig {
    var r = try JSONObjectReader(JSONValue.parse(data, source: source), location: source)
    func fail(_ key: String, _ expected: String) -> DistillError {
      .invalidValue(location: "\(source): \(key)", expected: expected, found: r.object[key]?.summary ?? "nothing")
    }
    if let name = try r.string("_class_name"), name != "UNet2DConditionModel" {
      throw fail("_class_name", "\"UNet2DConditionModel\"")
    }
    let channels = try r.intArray("block_out_channels") ?? [320, 640, 1280, 1280]
    let levels = channels.count
    guard levels >= 1, channels.allSatisfy({ $0 > 0 }) else { throw fail("block_out_channels", "positive channel counts") }
    func kinds(_ key: String, _ plain: String, _ cross: String, default names: [String]) throws -> [Bool] {
      let names = try r.stringArray(key) ?? names
      guard names.count == levels, names.allSatisfy({ $0 == plain || $0 == cross }) else {
        throw fail(key, "\(levels) of \"\(plain)\" or \"\(cross)\" (one per block_out_channels entry)")
      }
      return names.map { $0 == cross }
    }
    let down = try kinds(
      "down_block_types", "DownBlock2D", "CrossAttnDownBlock2D",
      default: ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"])
    let up = try kinds(
      "up_block_types", "UpBlock2D", "CrossAttnUpBlock2D",
      default: ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"])
    /// An integer, or one per level.
    func perLevel(_ key: String, default value: Int?) throws -> [Int]? {
      switch r.value(key) {
      case nil: return value.map { [Int](repeating: $0, count: levels) }
      case .number?: return [Int](repeating: try r.int(key)!, count: levels)
      case .array?:
        guard let values = try r.intArray(key), values.count == levels else { throw fail(key, "\(levels) integers") }
        return values
      default: throw fail(key, "an integer or one per level")
      }
    }
    guard let crossDimension = try r.int("cross_attention_dim"), crossDimension > 0 else {
      throw fail("cross_attention_dim", "a positive integer (an array of them is not supported)")
    }
    // diffusers: num_attention_heads, else attention_head_dim (which the UNet takes as heads).
    let heads = try perLevel("num_attention_heads", default: nil) ?? perLevel("attention_head_dim", default: 8)!
    var config = UNet2DConditionConfig(
      blockOutChannels: channels, crossAttentionDown: down, crossAttentionUp: up,
      crossAttentionDimension: crossDimension, heads: heads,
      transformerLayers: try perLevel("transformer_layers_per_block", default: 1)!)
    if let size = r.value("sample_size") {
      switch size {
      case .number: config.sampleSize = try r.int("sample_size")
      case .array(let a) where a.count == 2 && a[0] == a[1]: config.sampleSize = try r.intArray("sample_size")?.first
      default: throw fail("sample_size", "an integer or a square [h, w] pair")
      }
    }
    config.inChannels = try r.int("in_channels", default: 4)
    config.outChannels = try r.int("out_channels", default: 4)
    config.centerInputSample = try r.bool("center_input_sample", default: false)
    config.flipSinToCos = try r.bool("flip_sin_to_cos", default: true)
    config.freqShift = try r.float("freq_shift", default: 0)
    config.layersPerBlock = try r.int("layers_per_block", default: 2)
    config.downsamplePadding = try r.int("downsample_padding", default: 1)
    config.midBlockScaleFactor = try r.float("mid_block_scale_factor", default: 1)
    config.normGroups = try r.int("norm_num_groups", default: 32)
    config.normEps = try r.float("norm_eps", default: 1e-5)
    config.linearProjection = try r.bool("use_linear_projection", default: false)
    config.timeEmbeddingDimension = try r.int("time_embedding_dim")
    config.hasMidBlock = r.object["mid_block_type"] != .null
    if config.hasMidBlock {
      _ = try r.choice("mid_block_type", ["UNetMidBlock2DCrossAttn"], default: "UNetMidBlock2DCrossAttn")
    } else {
      _ = r.value("mid_block_type")
    }
    _ = try r.choice("act_fn", ["silu", "swish"], default: "silu")
    _ = try r.choice("time_embedding_type", ["positional"], default: "positional")
    _ = try r.choice("resnet_time_scale_shift", ["default"], default: "default")
    _ = try r.choice("attention_type", ["default"], default: "default")
    for key in ["conv_in_kernel", "conv_out_kernel"] where try r.int(key, default: 3) != 3 { throw fail(key, "3") }
    // Keys whose only supported value is their default (null, false or 1).
    for key in [
      "class_embed_type", "num_class_embeds", "addition_embed_type", "addition_time_embed_dim",
      "projection_class_embeddings_input_dim", "encoder_hid_dim", "encoder_hid_dim_type", "time_cond_proj_dim",
      "time_embedding_act_fn", "timestep_post_act", "cross_attention_norm", "mid_block_only_cross_attention",
      "reverse_transformer_layers_per_block",
    ] where r.value(key) != nil {
      throw fail(key, "null (not supported)")
    }
    for key in ["only_cross_attention", "dual_cross_attention", "class_embeddings_concat", "resnet_skip_time_act"]
    where try r.bool(key, default: false) {
      throw fail(key, "false (not supported)")
    }
    if try r.float("resnet_out_scale_factor", default: 1) != 1 { throw fail("resnet_out_scale_factor", "1") }
    // Inference-irrelevant: dropout (identity), float32 upcasting of attention, the heads of an
    // added embedding that is refused above.
    for key in ["dropout", "upcast_attention", "addition_embed_type_num_heads"] { _ = r.value(key) }
    try r.rejectUnknownKeys { $0.hasPrefix("_") }
    for (i, c) in channels.enumerated() {
      guard c % config.normGroups == 0 else { throw fail("norm_num_groups", "a divisor of every block_out_channels entry") }
      guard c % heads[i] == 0 else { throw fail("attention_head_dim", "head counts dividing each level's channels") }
    }
    return config
  }
}
