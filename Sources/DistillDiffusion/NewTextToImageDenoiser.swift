import DistillNN
import DistillText
import Foundation

extension TextToImageDenoiser {
  /// A new text-to-image latent denoiser, the `network` of a generator with `init: "new"`:
  ///
  /// ```json
  /// {"type": "stable-diffusion", "unet": {UNet2DConditionModel config keys},
  ///  "text": FOLDER, "vae": FOLDER}
  /// ```
  ///
  /// a UNet2DConditionModel of the `unet` keys initialised from `rng`, and, frozen, the
  /// tokenizer and text encoder of `text` (a folder holding `tokenizer/` and `text_encoder/`:
  /// a Stable-Diffusion-layout folder) and the AutoencoderKL of `vae` (a `vae/` folder, as an
  /// `autoencoder` run writes). The parts are laid out as a Stable-Diffusion-layout folder in a
  /// temporary directory (with `scheduler/` a DDIM config of `scheduleConfig` and
  /// `prediction`, trailing spacing), so that ``save(folder:)`` writes a folder that loads back
  /// as a `folder` teacher. `text` and `vae` must be absolute (the manifest resolves them).
  ///
  /// - Throws: ``DistillError`` naming `location` and the key: a missing or non-object `unet`,
  ///   its config errors (at `location.unet`), no `sample_size`, a `text` folder without
  ///   `tokenizer/` or `text_encoder/`, a `vae` without `config.json`, `cross_attention_dim`
  ///   other than the text encoder's width, `in_channels` or `out_channels` other than the
  ///   VAE's latent channels, an unknown key.
  public static func makeNew(
    network: JSONValue, scheduleConfig: ScheduleConfig, prediction: Prediction, location: String,
    using rng: inout RandomGenerator
  ) throws -> TextToImageDenoiser {
    var n = try JSONObjectReader(network, location: location)
    _ = try n.choice("type", ["stable-diffusion"], default: "")
    guard case .object(var unetKeys)? = n.value("unet") else {
      throw DistillError.invalidValue(
        location: "\(location).unet", expected: "an object of UNet2DConditionModel config keys",
        found: n.object["unet"]?.summary ?? "nothing")
    }
    func folder(_ key: String, holding parts: [String]) throws -> String {
      guard let path = try n.string(key) else {
        throw DistillError.invalidValue(location: "\(location).\(key)", expected: "a folder path", found: "nothing")
      }
      for part in parts where !FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(part)) {
        throw DistillError.invalidValue(
          location: "\(location).\(key)", expected: "a folder holding \(parts.joined(separator: " and "))",
          found: "\"\(path)\" without \(part)")
      }
      return path
    }
    let text = try folder("text", holding: ["tokenizer/vocab.json", "text_encoder/config.json"])
    let vae = try folder("vae", holding: ["config.json"])
    try n.rejectUnknownKeys()
    unetKeys["_class_name"] = .string("UNet2DConditionModel")
    let config = try UNet2DConditionConfig.decode(
      JSONEncoder().encode(JSONValue.object(unetKeys)), source: "\(location).unet")
    func read(_ path: String) throws -> Data {
      guard let data = FileManager.default.contents(atPath: path) else {
        throw DistillError.io(path: path, reason: "cannot read the file")
      }
      return data
    }
    let textPath = (text as NSString).appendingPathComponent("text_encoder/config.json")
    let width = try CLIPTextConfig.decode(read(textPath), source: textPath).hiddenSize
    let vaePath = (vae as NSString).appendingPathComponent("config.json")
    let latentChannels = try AutoencoderKLConfig.decode(read(vaePath), source: vaePath).latentChannels
    let checks: [(key: String, value: Int?, expected: Int, what: String)] = [
      ("cross_attention_dim", config.crossAttentionDimension, width, "the text encoder's hidden_size (\(textPath))"),
      ("in_channels", config.inChannels, latentChannels, "the VAE's latent_channels (\(vaePath))"),
      ("out_channels", config.outChannels, latentChannels, "the VAE's latent_channels (\(vaePath))"),
    ]
    for check in checks where check.value != check.expected {
      throw DistillError.invalidValue(
        location: "\(location).unet.\(check.key)", expected: "\(check.expected), \(check.what)",
        found: check.value.map(String.init) ?? "nothing")
    }
    guard config.sampleSize != nil else {
      throw DistillError.invalidValue(
        location: "\(location).unet.sample_size", expected: "the latent size (an integer)", found: "nothing")
    }
    let skeleton = try writeSkeleton(
      text: text, vae: vae, unet: .object(unetKeys), scheduleConfig: scheduleConfig, prediction: prediction)
    let pipeline = try StableDiffusionFolder(folder: skeleton, unet: UNet2DConditionModel(config: config, using: &rng))
    return TextToImageDenoiser(pipeline: pipeline, prediction: prediction, newNetwork: network)
  }

  /// A Stable-Diffusion-layout folder without UNet weights in a new temporary directory:
  /// `model_index.json`, `tokenizer/` and `text_encoder/` linked to `text`'s, `vae/` to `vae`
  /// (``save(folder:)`` copies what the links name), `unet/config.json` and a DDIM `scheduler/`.
  static func writeSkeleton(
    text: String, vae: String, unet: JSONValue, scheduleConfig: ScheduleConfig, prediction: Prediction
  ) throws -> String {
    let manager = FileManager.default
    let folder = manager.temporaryDirectory.appendingPathComponent("distillery-sd-\(UUID().uuidString)").path
    func target(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
    var scheduler: [String: JSONValue] = [
      "_class_name": .string("DDIMScheduler"), "num_train_timesteps": .number(Double(scheduleConfig.trainSteps)),
      "rescale_betas_zero_snr": .bool(scheduleConfig.rescaleZeroTerminalSNR),
      "prediction_type": .string(prediction.rawValue), "clip_sample": .bool(false), "set_alpha_to_one": .bool(false),
      "steps_offset": .number(0), "timestep_spacing": .string("trailing"),
    ]
    if let betas = scheduleConfig.trainedBetas {
      scheduler["trained_betas"] = .array(betas.map { .number($0) })
    } else {
      scheduler["beta_schedule"] = .string(scheduleConfig.betaSchedule.rawValue)
      scheduler["beta_start"] = .number(scheduleConfig.betaStart)
      scheduler["beta_end"] = .number(scheduleConfig.betaEnd)
    }
    func pair(_ library: String, _ name: String) -> JSONValue { .array([.string(library), .string(name)]) }
    let index: JSONValue = .object([
      "_class_name": .string("StableDiffusionPipeline"), "scheduler": pair("diffusers", "DDIMScheduler"),
      "text_encoder": pair("transformers", "CLIPTextModel"), "tokenizer": pair("transformers", "CLIPTokenizer"),
      "unet": pair("diffusers", "UNet2DConditionModel"), "vae": pair("diffusers", "AutoencoderKL"),
      "safety_checker": .array([.null, .null]), "feature_extractor": .array([.null, .null]),
      "requires_safety_checker": .bool(false),
    ])
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do {
      for name in ["unet", "scheduler"] {
        try manager.createDirectory(atPath: target(name), withIntermediateDirectories: true)
      }
      try manager.createSymbolicLink(
        atPath: target("tokenizer"), withDestinationPath: (text as NSString).appendingPathComponent("tokenizer"))
      try manager.createSymbolicLink(
        atPath: target("text_encoder"), withDestinationPath: (text as NSString).appendingPathComponent("text_encoder"))
      try manager.createSymbolicLink(atPath: target("vae"), withDestinationPath: vae)
      try encoder.encode(index).write(to: URL(fileURLWithPath: target("model_index.json")))
      try encoder.encode(unet).write(to: URL(fileURLWithPath: target("unet/config.json")))
      try encoder.encode(JSONValue.object(scheduler)).write(
        to: URL(fileURLWithPath: target("scheduler/scheduler_config.json")))
    } catch {
      throw DistillError.io(
        path: folder, reason: "cannot lay out the new Stable Diffusion folder: \(error.localizedDescription)")
    }
    return folder
  }
}
