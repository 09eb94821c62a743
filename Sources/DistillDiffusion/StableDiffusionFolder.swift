import DistillNN
import DistillText
import Foundation

/// A text-to-image latent diffusion model in the folder layout `StableDiffusionPipeline
/// .save_pretrained` writes: `model_index.json`, `tokenizer/`, `text_encoder/`, `unet/`,
/// `vae/` and `scheduler/` (a `DDIMScheduler`'s config). ``sample(prompts:guidance:steps:latents:)``
/// computes what diffusers' pipeline computes for `output_type="np"`: classifier-free
/// guidance with the empty prompt as the unconditional input, DDIM as the scheduler config
/// sets it up, and the VAE's images mapped to [0, 1].
///
/// Not read: a safety checker, an image encoder, LoRA weights, schedulers other than DDIM.
public final class StableDiffusionFolder {
  /// The folder it was loaded from.
  public let folder: String
  public let tokenizer: CLIPTokenizer
  public let textEncoder: CLIPTextModel
  public let unet: UNet2DConditionModel
  public let vae: AutoencoderKL
  public let schedule: NoiseSchedule
  /// The parameters of ``schedule`` (the scheduler config's betas).
  public let scheduleConfig: ScheduleConfig
  public let prediction: Prediction
  /// The scheduler config's DDIM settings.
  public let sampler: DDIMSampler

  /// Loads `folder`; with `unet`, that network instead of `unet/`'s weights (a new UNet of
  /// `unet/config.json`'s architecture: ``TextToImageDenoiser/makeNew(network:scheduleConfig:prediction:location:using:)``).
  ///
  /// - Throws: ``DistillError`` naming the file and key: a missing or unknown component in
  ///   `model_index.json`, a scheduler other than DDIM, and every error of the components'
  ///   loaders.
  public init(folder: String, unet newUNet: UNet2DConditionModel? = nil) throws {
    self.folder = folder
    func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
    let indexPath = path("model_index.json")
    let index = try JSONObjectReader(file: indexPath, missing: "not a Stable Diffusion folder (no model_index.json)").object
    let expected = [
      "tokenizer": "CLIPTokenizer", "text_encoder": "CLIPTextModel", "unet": "UNet2DConditionModel",
      "vae": "AutoencoderKL", "scheduler": "DDIMScheduler",
    ]
    for (component, className) in expected.sorted(by: { $0.key < $1.key }) {
      guard case .array(let pair)? = index[component], pair.count == 2, case .string(let found) = pair[1] else {
        throw DistillError.invalidValue(
          location: "\(indexPath): \(component)", expected: "[library, \"\(className)\"]",
          found: index[component]?.summary ?? "nothing")
      }
      guard found == className || (component == "tokenizer" && found == "CLIPTokenizerFast") else {
        throw DistillError.invalidValue(
          location: "\(indexPath): \(component)", expected: "\"\(className)\" (the only kind read)", found: "\"\(found)\"")
      }
    }
    tokenizer = try CLIPTokenizer(folder: path("tokenizer"))
    textEncoder = try CLIPTextModel.load(folder: path("text_encoder"))
    unet = try newUNet ?? UNet2DConditionModel.load(folder: path("unet"))
    vae = try AutoencoderKL.load(folder: path("vae"))
    guard unet.config.crossAttentionDimension == textEncoder.config.hiddenSize,
      unet.config.inChannels == vae.config.latentChannels
    else {
      throw DistillError.invalidValue(
        location: "\(path("unet/config.json")): cross_attention_dim",
        expected: "the text encoder's width \(textEncoder.config.hiddenSize) and the VAE's \(vae.config.latentChannels) latent channels",
        found: "\(unet.config.crossAttentionDimension) and \(unet.config.inChannels) input channels")
    }
    let schedulerPath = path("scheduler/scheduler_config.json")
    guard let schedulerData = FileManager.default.contents(atPath: schedulerPath) else {
      throw DistillError.io(path: schedulerPath, reason: "cannot read the scheduler config")
    }
    let (config, prediction) = try ScheduleConfig.decodeDiffusers(schedulerData, source: schedulerPath)
    var r = try JSONObjectReader(JSONValue.parse(schedulerData, source: schedulerPath), location: schedulerPath)
    let spacing: TimestepSpacing = try r.choice("timestep_spacing", default: .leading)
    schedule = config.schedule
    scheduleConfig = config
    self.prediction = prediction
    sampler = DDIMSampler(
      schedule: schedule, prediction: prediction, clipSample: try r.bool("clip_sample", default: true),
      clipSampleRange: try r.double("clip_sample_range") ?? 1, setAlphaToOne: try r.bool("set_alpha_to_one", default: true),
      spacing: spacing, stepsOffset: try r.int("steps_offset", default: 0))
  }

  /// Whether `folder` is in the Stable Diffusion layout (`model_index.json` and `text_encoder/`;
  /// other diffusers pipelines have a `model_index.json` too).
  public static func isTextToImage(folder: String) -> Bool {
    let manager = FileManager.default
    return manager.fileExists(atPath: (folder as NSString).appendingPathComponent("model_index.json"))
      && manager.fileExists(atPath: (folder as NSString).appendingPathComponent("text_encoder"))
  }

  /// `last_hidden_state` of the text encoder for `prompts`, with the number of tokens each
  /// prompt lost to truncation (CLIP's tokenizer warns about them).
  public func encode(prompts: [String]) -> (states: Tensor, truncated: [Int]) {
    let encodings = prompts.map(tokenizer.encode)
    return (withoutGradients { textEncoder(encodings.map(\.ids)) }, encodings.map(\.truncatedTokens))
  }

  /// Images `[N, 3, H, W]` in [0, 1] for `prompts` from `latents` `[N, 4, h, w]` (standard
  /// normal: DDIM's initial noise), in `steps` DDIM steps with classifier-free `guidance`
  /// (1: no unconditional pass) against the empty prompt.
  public func sample(prompts: [String], guidance: Double, steps: Int, latents: Tensor) -> Tensor {
    let n = prompts.count
    precondition(latents.shape.count == 4 && latents.shape[0] == n && latents.shape[1] == unet.config.inChannels)
    let conditional = encode(prompts: prompts).states
    let context = guidance == 1 ? conditional : Tensor.concat([encode(prompts: [String](repeating: "", count: n)).states, conditional], axis: 0)
    let final = withoutGradients {
      sampler.sample(
        model: { x, t in
          guard guidance != 1 else { return self.unet(x, timesteps: t, encoderHiddenStates: context) }
          let both = self.unet(Tensor.concat([x, x], axis: 0), timesteps: t + t, encoderHiddenStates: context)
          let unconditional = both.sliced(axis: 0, 0..<n)
          return unconditional + (both.sliced(axis: 0, n..<(2 * n)) - unconditional) * Float(guidance)
        }, initialNoise: latents, steps: steps)
    }
    let images = withoutGradients { vae.decodeLatents(final) }
    return (images * 0.5 + 0.5).clamp(min: 0, max: 1)
  }
}
