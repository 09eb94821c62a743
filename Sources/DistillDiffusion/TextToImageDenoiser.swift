import DistillNN
import Foundation

/// A denoiser whose samples are latents of an autoencoder: images are ``decode(_:)`` of them.
public protocol LatentDenoiser: Denoiser {
  /// Images `[N, C, H, W]` in [−1, 1] for latents `[N] + sampleShape`.
  func decode(_ latents: Tensor) -> Tensor
  /// The shape `[C, H, W]` of one decoded image, when the sample shape is fixed.
  var imageShape: [Int]? { get }
}

/// The UNet of a Stable-Diffusion-layout folder as a text-conditional latent denoiser: samples
/// are the VAE's scaled latents `[in_channels, sample_size, sample_size]`, the condition is a
/// prompt embedding per sample (the text encoder's `last_hidden_state`), and an unconditional
/// call gets the empty prompt's embedding, as the pipeline's classifier-free guidance does.
///
/// The tokenizer, text encoder and VAE stay frozen and shared with the folder; a trainable copy
/// (``copy(prediction:)``) has a UNet of its own. ``save(folder:)`` writes the Stable Diffusion
/// layout: the source folder's other components, this UNet's weights, and the scheduler config
/// with this denoiser's prediction type.
public final class TextToImageDenoiser: LatentDenoiser, SavableDenoiser {
  public let pipeline: StableDiffusionFolder
  public let unet: UNet2DConditionModel
  public let prediction: Prediction
  public let promptConditioning: PromptConditioning
  /// The `network` object a new denoiser was made from (``makeNew(network:scheduleConfig:prediction:location:using:)``),
  /// which ``networkJSON`` records so that a resumed run makes it again; `nil` for a loaded folder.
  let newNetwork: JSONValue?

  /// The UNet of `pipeline` (or `unet`, a network of the same config), read as `prediction`
  /// (default: the scheduler config's).
  public init(
    pipeline: StableDiffusionFolder, unet: UNet2DConditionModel? = nil,
    prediction: Prediction? = nil, newNetwork: JSONValue? = nil
  ) {
    self.pipeline = pipeline
    self.unet = unet ?? pipeline.unet
    self.prediction = prediction ?? pipeline.prediction
    self.newNetwork = newNetwork
    promptConditioning = PromptConditioning(null: pipeline.encode(prompts: [""]).states)
  }

  private init(
    copying other: TextToImageDenoiser, unet: UNet2DConditionModel, prediction: Prediction
  ) {
    pipeline = other.pipeline
    self.unet = unet
    self.prediction = prediction
    promptConditioning = other.promptConditioning
    newNetwork = other.newNetwork
  }

  /// Loads a Stable-Diffusion-layout folder (``StableDiffusionFolder/init(folder:)``).
  public convenience init(folder: String) throws {
    self.init(pipeline: try StableDiffusionFolder(folder: folder))
  }

  public var schedule: NoiseSchedule { pipeline.schedule }
  public var scheduleConfig: ScheduleConfig? { pipeline.scheduleConfig }
  public var prompts: PromptConditioning? { promptConditioning }
  public var sampleShape: [Int]? {
    unet.config.sampleSize.map { [unet.config.inChannels, $0, $0] }
  }

  public var summary: String {
    let c = unet.config
    return
      "Stable Diffusion UNet2DConditionModel: \(c.inChannels)→\(c.outChannels) latent channels, blocks "
      + "\(c.blockOutChannels), \(unet.parameterCount) parameters, prompts of \(promptConditioning.length)×"
      + "\(promptConditioning.width); \(prediction.rawValue) prediction; schedule \(pipeline.scheduleConfig.summary) "
      + "(\(pipeline.folder))"
  }

  public func validateInput(shape: [Int], location: String) throws {
    let c = unet.config
    let factor = 1 << (c.blockOutChannels.count - 1)
    guard shape.count == 4, shape[1] == c.inChannels, shape[2] % factor == 0, shape[3] % factor == 0
    else {
      throw DistillError.invalidValue(
        location: location,
        expected:
          "latents [N, \(c.inChannels), H, W] with H and W multiples of \(factor) (the UNet's in_channels and levels)",
        found: "\(shape)")
    }
  }

  public func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Condition) -> Tensor {
    precondition(condition.labels == nil, "class labels for a text-conditional denoiser")
    let context = promptConditioning.embeddings(for: condition, count: x.shape[0])
    return unet(x, timesteps: timesteps, encoderHiddenStates: context)
  }

  /// Prompt embeddings `[N, L, D]` for `prompts` (no gradients), with the tokens each prompt
  /// lost to truncation.
  public func encode(prompts: [String]) -> (embeddings: Tensor, truncated: [Int]) {
    let (states, truncated) = pipeline.encode(prompts: prompts)
    return (states, truncated)
  }

  public var imageShape: [Int]? {
    let vae = pipeline.vae.config
    let factor = 1 << (vae.blockOutChannels.count - 1)
    return sampleShape.map { [vae.outChannels, $0[1] * factor, $0[2] * factor] }
  }

  public func decode(_ latents: Tensor) -> Tensor {
    pipeline.vae.decodeLatents(latents).clamp(min: -1, max: 1)
  }

  /// A trainable copy: a UNet of its own holding the same weights, read as `prediction`.
  public func copy(prediction: Prediction? = nil) throws -> TextToImageDenoiser {
    var rng = RandomGenerator(seed: 0)
    let copy = UNet2DConditionModel(config: unet.config, using: &rng)
    _ = try copy.load(unet.stateDict(), strict: true)
    return TextToImageDenoiser(copying: self, unet: copy, prediction: prediction ?? self.prediction)
  }

  public var networkJSON: JSONValue {
    newNetwork ?? .object(["type": .string("stable-diffusion"), "folder": .string(pipeline.folder)])
  }
  public var weightsModule: Module? { unet }

  /// Writes `folder` in the Stable Diffusion layout: `model_index.json`, `tokenizer/`,
  /// `text_encoder/` and `vae/` copied from the source folder, `unet/` with its config and this
  /// UNet's weights, `scheduler/` with `prediction_type` set to this denoiser's. A folder that
  /// exists is replaced part by part.
  public func save(folder: String) throws {
    let manager = FileManager.default
    // A new denoiser's parts are links to their folders: the copy holds what they name.
    func source(_ name: String) -> String {
      ((pipeline.folder as NSString).appendingPathComponent(name) as NSString).resolvingSymlinksInPath
    }
    func target(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
    do {
      try manager.createDirectory(atPath: target("unet"), withIntermediateDirectories: true)
      try manager.createDirectory(atPath: target("scheduler"), withIntermediateDirectories: true)
      for name in ["model_index.json", "tokenizer", "text_encoder", "vae", "unet/config.json"] {
        if manager.fileExists(atPath: target(name)) { try manager.removeItem(atPath: target(name)) }
        try manager.copyItem(atPath: source(name), toPath: target(name))
      }
    } catch {
      throw DistillError.io(
        path: folder,
        reason: "cannot write the Stable Diffusion folder: \(error.localizedDescription)")
    }
    try SafetensorsFile.write(
      unet.stateDict(), metadata: ["format": "pt", "distillery": DenoiserFolder.format],
      to: target("unet/\(UNet2DModel.weightsFileName)"))
    let schedulerPath = source("scheduler/scheduler_config.json")
    guard let data = manager.contents(atPath: schedulerPath),
      case .object(var scheduler) = try JSONValue.parse(data, source: schedulerPath)
    else { throw DistillError.io(path: schedulerPath, reason: "cannot read the scheduler config") }
    scheduler["prediction_type"] = .string(prediction.rawValue)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try AtomicFileWriter.write(
      Array(try encoder.encode(JSONValue.object(scheduler))),
      to: target("scheduler/scheduler_config.json"))
  }
}

extension TextToImageDenoiser: FeatureTapping {
  /// The UNet's down-block and mid-block outputs at the empty prompt (labels: none).
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?) -> NetworkFeatures {
    features(x, timesteps: timesteps, labels: labels, encoderHiddenStates: nil)
  }

  /// The UNet's down-block and mid-block outputs for one prompt embedding per sample (`nil`:
  /// the empty prompt's, as an unconditional call).
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?, encoderHiddenStates: Tensor?)
    -> NetworkFeatures
  {
    precondition(labels == nil, "class labels for a text-conditional denoiser")
    let condition = encoderHiddenStates.map { Condition(embeddings: $0) } ?? .none
    let context = promptConditioning.embeddings(for: condition, count: x.shape[0])
    return unet.features(x, timesteps: timesteps, encoderHiddenStates: context)
  }
}
