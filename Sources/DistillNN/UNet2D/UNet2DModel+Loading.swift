import Foundation

extension UNet2DModel {
  /// The weights file name diffusers writes in a model folder.
  public static let weightsFileName = "diffusion_pytorch_model.safetensors"

  /// Loads a diffusers `UNet2DModel` folder: `config.json` and
  /// `diffusion_pytorch_model.safetensors` (float32, float16 or bfloat16).
  ///
  /// Legacy attention keys (`query`, `key`, `value`, `proj_attn`) and `module.` / `_orig_mod.`
  /// prefixes are mapped as diffusers maps them.
  ///
  /// - Throws: ``DistillError`` naming the file and key: a missing file, a config value this
  ///   implementation does not support, malformed safetensors, or weights that do not fit
  ///   the configured architecture (every missing, unexpected and mis-shaped key listed).
  public static func load(folder: String) throws -> UNet2DModel {
    let configPath = (folder as NSString).appendingPathComponent("config.json")
    guard let data = FileManager.default.contents(atPath: configPath) else {
      throw DistillError.io(path: configPath, reason: "cannot read the model's config.json (is this a diffusers UNet2DModel folder?)")
    }
    let config = try UNet2DConfig.decode(data, source: configPath)
    let weightsPath = (folder as NSString).appendingPathComponent(weightsFileName)
    guard FileManager.default.fileExists(atPath: weightsPath) else {
      let pickle = (folder as NSString).appendingPathComponent("diffusion_pytorch_model.bin")
      let hint =
        FileManager.default.fileExists(atPath: pickle)
        ? "only PyTorch pickle weights (.bin) are here; save them as safetensors (docs/teachers.md)"
        : "no weights file"
      throw DistillError.io(path: weightsPath, reason: hint)
    }
    try SafetensorsFile.requireRoom(
      forParameters: config.parameterCount(source: configPath), path: weightsPath, model: "the UNet of \(configPath)")
    var rng = RandomGenerator(seed: 0)
    let model = UNet2DModel(config: config, using: &rng)
    try model.loadWeights(path: weightsPath)
    model.eval()
    return model
  }

  /// Loads weights from a safetensors file written by diffusers or by ``save(folder:)``.
  ///
  /// - Parameter requireFinite: refuse a file in which any tensor holds a NaN or infinity,
  ///   naming it (the default: such a teacher poisons every step of a run).
  public func loadWeights(path: String, requireFinite: Bool = true) throws {
    let file = try SafetensorsFile.read(contentsOf: path)
    // Check names and shapes from the header before converting any data.
    let renamed = Dictionary(file.keys.map { (Self.canonicalKey($0), $0) }, uniquingKeysWith: { first, _ in first })
    let expected = Dictionary(uniqueKeysWithValues: namedParameters().map { ($0.name, $0.parameter.shape) })
    var problems: [String] = []
    for (name, shape) in expected.sorted(by: { $0.key < $1.key }) {
      guard let original = renamed[name] else {
        problems.append("'\(name)': missing from the weights")
        continue
      }
      if let info = file.info(original), info.shape != shape {
        problems.append("'\(original)': shape \(info.shape) in the weights, the configured model expects \(shape)")
      }
    }
    for (name, original) in renamed.sorted(by: { $0.key < $1.key }) where expected[name] == nil {
      problems.append("'\(original)': unexpected key, the configured model has no such parameter")
    }
    guard problems.isEmpty else {
      throw DistillError.malformed(
        path: path, detail: DistillError.stateDictMismatch(problems: problems).description)
    }
    if requireFinite { try file.requireFinite() }
    var tensors: [String: Tensor] = [:]
    for (name, original) in renamed { tensors[name] = try file.tensor(original) }
    try load(tensors, strict: true)
  }

  /// Writes `config.json` (with `extraConfig`, keys diffusers ignores such as `_`-prefixed
  /// ones) and the weights.
  public func save(folder: String, extraConfig: [String: JSONValue] = [:]) throws {
    try writeModelFolder(
      folder, config: config.diffusersJSON().merging(extraConfig) { _, extra in extra }, weightsFile: Self.weightsFileName,
      stateDict: stateDict())
  }

  /// A state-dict key as this implementation names it.
  static func canonicalKey(_ key: String) -> String {
    var k = key
    for prefix in ["module.", "_orig_mod."] where k.hasPrefix(prefix) { k.removeFirst(prefix.count) }
    guard k.contains(".attentions.") else { return k }
    let legacy = [("query.", "to_q."), ("key.", "to_k."), ("value.", "to_v."), ("proj_attn.", "to_out.0.")]
    var parts = k.components(separatedBy: ".attentions.")
    if parts.count == 2 {
      let tail = parts[1]
      if let dot = tail.firstIndex(of: ".") {
        let index = tail[..<dot]
        var rest = String(tail[tail.index(after: dot)...])
        for (old, new) in legacy where rest.hasPrefix(old) {
          rest = new + rest.dropFirst(old.count)
          break
        }
        parts[1] = index + "." + rest
      }
    }
    return parts.joined(separator: ".attentions.")
  }
}

extension UNet2DConfig {
  /// The config as diffusers' `config.json` spells it.
  public func diffusersJSON() -> [String: JSONValue] {
    func ints(_ a: [Int]) -> JSONValue { .array(a.map { .number(Double($0)) }) }
    // The shortest decimal that reads back as the Float: 1e-05, not Double(Float(1e-5)) = 9.99999974e-06.
    func decimal(_ x: Float) -> JSONValue { .number(Double(x.description) ?? Double(x)) }
    return [
      "_class_name": .string("UNet2DModel"),
      "class_embed_type": {
        switch classEmbedding {
        case .timestep?: return .string("timestep")
        case .identity?: return .string("identity")
        case .table?, nil: return .null
        }
      }(),
      "num_class_embeds": { if case .table(let classes)? = classEmbedding { .number(Double(classes)) } else { .null } }(),
      "sample_size": sampleSize.map { .number(Double($0)) } ?? .null,
      "in_channels": .number(Double(inChannels)),
      "out_channels": .number(Double(outChannels)),
      "center_input_sample": .bool(centerInputSample),
      "time_embedding_type": .string("positional"),
      "time_embedding_dim": timeEmbeddingDimension.map { .number(Double($0)) } ?? .null,
      "freq_shift": decimal(freqShift),
      "flip_sin_to_cos": .bool(flipSinToCos),
      "down_block_types": .array(downBlocks.map { .string($0.rawValue) }),
      "up_block_types": .array(upBlocks.map { .string($0.rawValue) }),
      "mid_block_type": hasMidBlock ? .string("UNetMidBlock2D") : .null,
      "block_out_channels": ints(blockOutChannels),
      "layers_per_block": .number(Double(layersPerBlock)),
      "mid_block_scale_factor": decimal(midBlockScaleFactor),
      "downsample_padding": .number(Double(downsamplePadding)),
      "downsample_type": .string("conv"),
      "upsample_type": .string("conv"),
      "dropout": .number(0),
      "act_fn": .string(activation == .gelu ? "gelu" : activation == .relu ? "relu" : "silu"),
      "attention_head_dim": attentionHeadDimension.map { .number(Double($0)) } ?? .null,
      "norm_num_groups": .number(Double(normGroups)),
      "attn_norm_num_groups": attentionNormGroups.map { .number(Double($0)) } ?? .null,
      "norm_eps": decimal(normEps),
      "resnet_time_scale_shift": .string(scaleShift ? "scale_shift" : "default"),
      "add_attention": .bool(addAttention),
      "num_train_timesteps": .null,
    ]
  }
}

extension JSONEncoder {
  static var sortedPretty: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return encoder
  }
}
