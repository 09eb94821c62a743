import DistillCore
import DistillNN
import Foundation

/// The configuration of a Hugging Face `CLIPTextModel` (`text_encoder/config.json`).
public struct CLIPTextConfig: Equatable, Sendable {
  public enum Activation: String, Sendable, CaseIterable {
    case quickGELU = "quick_gelu"
    case gelu
  }

  public var vocabularySize: Int
  public var hiddenSize: Int
  public var intermediateSize: Int
  public var heads: Int
  public var layers: Int
  public var positions: Int
  public var activation: Activation
  public var layerNormEps: Float

  /// Reads `config.json`; every key that changes the computation is read or refused by name.
  ///
  /// - Throws: ``DistillError`` naming the file and key.
  public static func decode(_ data: Data, source: String) throws -> CLIPTextConfig {
    var r = try JSONObjectReader(JSONValue.parse(data, source: source), location: source)
    func required(_ key: String) throws -> Int {
      guard let value = try r.int(key), value >= 1 else {
        throw DistillError.invalidValue(location: "\(source): \(key)", expected: "a positive integer", found: r.object[key]?.summary ?? "nothing")
      }
      return value
    }
    if let type = try r.string("model_type"), type != "clip_text_model" {
      throw DistillError.invalidValue(location: "\(source): model_type", expected: "\"clip_text_model\"", found: "\"\(type)\"")
    }
    let activation = try r.choice("hidden_act", Activation.allCases.map(\.rawValue), default: "quick_gelu")
    let config = CLIPTextConfig(
      vocabularySize: try required("vocab_size"), hiddenSize: try required("hidden_size"),
      intermediateSize: try required("intermediate_size"), heads: try required("num_attention_heads"),
      layers: try required("num_hidden_layers"), positions: try required("max_position_embeddings"),
      activation: Activation(rawValue: activation) ?? .quickGELU, layerNormEps: try r.float("layer_norm_eps", default: 1e-5))
    guard config.hiddenSize % config.heads == 0 else {
      throw DistillError.invalidValue(
        location: "\(source): num_attention_heads", expected: "a divisor of hidden_size (\(config.hiddenSize))",
        found: String(config.heads))
    }
    // Keys that only matter for training, the projection head or generation.
    for key in [
      "architectures", "attention_dropout", "dropout", "bos_token_id", "eos_token_id", "pad_token_id", "dtype",
      "torch_dtype", "initializer_factor", "initializer_range", "projection_dim", "transformers_version",
    ] { _ = r.value(key) }
    try r.rejectUnknownKeys { $0.hasPrefix("_") }
    return config
  }
}

/// CLIP's text transformer as Hugging Face's `CLIPTextModel` computes `last_hidden_state`:
/// token plus position embeddings, pre-norm layers of causal multi-head self-attention and an
/// MLP (`quick_gelu` or `gelu`), and a final layer norm. Weight keys are the library's, with or
/// without the `text_model.` prefix.
public final class CLIPTextModel: Module {
  public let config: CLIPTextConfig
  let tokenEmbedding: Embedding
  let positionEmbedding: Embedding
  let layers: [EncoderLayer]
  let finalLayerNorm: LayerNorm

  final class EncoderLayer: Module {
    let norm1: LayerNorm
    let attention: MultiHeadAttention
    let norm2: LayerNorm
    let fc1: Linear
    let fc2: Linear
    let activation: CLIPTextConfig.Activation

    init(_ c: CLIPTextConfig, using rng: inout RandomGenerator) {
      norm1 = LayerNorm(size: c.hiddenSize, eps: c.layerNormEps)
      attention = MultiHeadAttention(width: c.hiddenSize, heads: c.heads, projectionBias: true, keys: .clip, using: &rng)
      norm2 = LayerNorm(size: c.hiddenSize, eps: c.layerNormEps)
      fc1 = Linear(inputSize: c.hiddenSize, outputSize: c.intermediateSize, using: &rng)
      fc2 = Linear(inputSize: c.intermediateSize, outputSize: c.hiddenSize, using: &rng)
      activation = c.activation
      super.init()
      register("layer_norm1", norm1)
      register("self_attn", attention)
      register("layer_norm2", norm2)
      let mlp = Module()
      mlp.register("fc1", fc1)
      mlp.register("fc2", fc2)
      register("mlp", mlp)
    }

    /// `x` `[N, L, C]` with the causal `mask` `[L, L]` (0 on and below the diagonal, −∞ above).
    func callAsFunction(_ x: Tensor, mask: Tensor) -> Tensor {
      let x = x + attention.attend(norm1(x), mask: mask)
      let hidden = fc1(norm2(x))
      let activated: Tensor
      switch activation {
      case .quickGELU: activated = hidden * (hidden * 1.702).sigmoid()
      case .gelu: activated = hidden.gelu()
      }
      return x + fc2(activated)
    }
  }

  public init(config: CLIPTextConfig, using rng: inout RandomGenerator) {
    self.config = config
    tokenEmbedding = Embedding(count: config.vocabularySize, dimension: config.hiddenSize, using: &rng)
    positionEmbedding = Embedding(count: config.positions, dimension: config.hiddenSize, using: &rng)
    layers = (0..<config.layers).map { _ in EncoderLayer(config, using: &rng) }
    finalLayerNorm = LayerNorm(size: config.hiddenSize, eps: config.layerNormEps)
    super.init()
    let embeddings = Module()
    embeddings.register("token_embedding", tokenEmbedding)
    embeddings.register("position_embedding", positionEmbedding)
    register("embeddings", embeddings)
    let encoder = Module()
    let list = Module()
    for (i, layer) in layers.enumerated() { list.register(String(i), layer) }
    encoder.register("layers", list)
    register("encoder", encoder)
    register("final_layer_norm", finalLayerNorm)
  }

  /// `last_hidden_state` `[N, L, hiddenSize]` for token ids `[N][L]` (L at most the positions).
  public func callAsFunction(_ ids: [[Int]]) -> Tensor {
    let n = ids.count
    let length = ids.first?.count ?? 0
    precondition(n > 0 && length >= 1 && length <= config.positions && ids.allSatisfy { $0.count == length })
    precondition(
      ids.allSatisfy { $0.allSatisfy { (0..<config.vocabularySize).contains($0) } }, "token ids outside the vocabulary")
    var x = tokenEmbedding(ids.flatMap { $0 }).reshaped([n, length, config.hiddenSize])
      + positionEmbedding(Array(0..<length)).reshaped([1, length, config.hiddenSize])
    let mask = Tensor(shape: [length, length]) { out in
      for i in 0..<length { for j in 0..<length { out[i * length + j] = j > i ? -.infinity : 0 } }
    }
    for layer in layers { x = layer(x, mask: mask) }
    return finalLayerNorm(x)
  }

  /// Loads a `text_encoder/` folder: `config.json` and `model.safetensors`.
  ///
  /// - Throws: ``DistillError`` naming the file and key: a missing file, an unsupported config,
  ///   weights that do not fit (every missing, unexpected and mis-shaped tensor listed).
  public static func load(folder: String) throws -> CLIPTextModel {
    try loadModelFolder(
      folder, of: "the text encoder", weightsFile: "model.safetensors", decode: CLIPTextConfig.decode,
      build: { CLIPTextModel(config: $0, using: &$1) },
      key: { name in
        // Older checkpoints prefix `text_model.`; `position_ids` is a buffer, not a weight.
        let key = name.hasPrefix("text_model.") ? String(name.dropFirst("text_model.".count)) : name
        return key == "embeddings.position_ids" ? nil : key
      })
  }
}
