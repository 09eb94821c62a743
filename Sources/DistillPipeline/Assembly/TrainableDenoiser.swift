import DistillCore
import DistillDiffusion

/// Where a trained denoiser network starts.
public enum DenoiserStart: String, CaseIterable, Sendable {
  /// A copy of the teacher.
  case teacher
  /// A new network described by the entry's `network`.
  case new
}

/// The parameters of a component that trains a denoiser network (a denoiser generator, a
/// trained score): where it starts, for a new network its architecture, and its prediction.
public let trainableDenoiserParameters: [ParameterSpec] = [
  .choice(
    "init", DenoiserStart.self, default: .teacher,
    "start from a copy of the teacher, or from a new network described by `network`"),
  .optional(
    "network", .object,
    "for init \"new\": the network object of denoiser.json, or {\"type\": \"stable-diffusion\", \"unet\": {UNet2DConditionModel config}, \"text\": FOLDER, \"vae\": FOLDER} for a text-to-image latent denoiser (docs/teachers.md)"),
  .optionalChoice(
    "prediction", Prediction.self,
    "what the network predicts: for init \"new\" default the schedule's; for init \"teacher\" the copy's output read as this, the same weights (default: the teacher's, but v_prediction for a denoiser generator's or trained score's copy of an epsilon teacher of vectors, docs/methods.md); \"sample\" keeps x̂₀ bounded at high noise"),
]

extension BuildContext {
  /// The denoiser an entry with ``trainableDenoiserParameters`` describes: a trainable copy of
  /// the teacher, or a new network initialised from the entry's stream; its module is
  /// returned in training mode.
  ///
  /// A copy's output is read as the entry's `prediction` (the same weights reparameterised).
  /// Without one it predicts what the teacher does, except that with `reparameterisingEpsilon`
  /// a copy of an ε-prediction teacher of vectors (a sample shape other than [C, H, W])
  /// predicts v: its x̂₀ = α·x − σ·v̂ at t = T−1 does not divide ε̂'s errors by α = √ᾱ
  /// (0.0064 for the linear DDPM betas). Images keep ε; the denoiser generator clips their
  /// x̂₀ instead (docs/methods.md, "Students of an ε-prediction teacher").
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` naming the key: no
  ///   teacher network to copy, no `network` for init "new", or an analytic network.
  public func makeTrainableDenoiser(_ entry: ComponentEntry, reparameterisingEpsilon: Bool = false) throws -> (
    denoiser: any SavableDenoiser, module: Module
  ) {
    let denoiser: any SavableDenoiser
    if entry.choice("init") as DenoiserStart == .teacher {
      guard let teacher = teacher as? any SavableDenoiser, teacher.weightsModule != nil else {
        throw DistillError.invalidValue(
          location: "\(entry.path).init",
          expected: "a teacher with a network to copy (for an analytic teacher use init \"new\" with a network)",
          found: teacher.map { "\"\($0.summary)\"" } ?? "no teacher")
      }
      let image = teacher.sampleShape?.count == 3
      let standard =
        reparameterisingEpsilon && teacher.prediction == .epsilon && !image ? .vPrediction : teacher.prediction
      denoiser = try DenoiserFolder.copy(of: teacher, prediction: entry.optionalChoice("prediction") ?? standard)
    } else if let made = newTextToImage, entry.path == manifest.generator?.path {
      denoiser = made
    } else {
      guard let network = entry.object("network").map({ resolvingTextToImagePaths($0) }) else {
        throw DistillError.invalidValue(
          location: "\(entry.path).network", expected: "a network object for init \"new\"", found: "nothing")
      }
      var rng = initialisationRNG(for: entry.path)
      denoiser = try DenoiserFolder.makeDenoiser(
        network: network, schedule: schedule, scheduleConfig: scheduleConfig,
        prediction: entry.optionalChoice("prediction") ?? prediction,
        location: "\(entry.path).network", using: &rng)
    }
    guard let module = denoiser.weightsModule else {
      throw DistillError.invalidValue(
        location: "\(entry.path).network.type", expected: "a network with parameters (mlp or unet2d)",
        found: "an analytic denoiser")
    }
    module.train()
    return (denoiser, module)
  }
}

extension BuildContext {
  /// Whether `entry` (the generator's) makes a new text-to-image denoiser: `init` "new" with a
  /// `network` of type "stable-diffusion". It is made before the data, whose prompts its text
  /// encoder embeds (``newTextToImage``).
  static func makesNewTextToImage(_ entry: ComponentEntry) -> Bool {
    guard entry.has("init"), entry.string("init") == DenoiserStart.new.rawValue,
      case .object(let network)? = entry.object("network")
    else { return false }
    return network["type"] == .string("stable-diffusion")
  }

  /// `network` with the `text` and `vae` folders of a "stable-diffusion" network resolved
  /// against the manifest's folder.
  func resolvingTextToImagePaths(_ network: JSONValue) -> JSONValue {
    guard case .object(var object) = network, object["type"] == .string("stable-diffusion") else { return network }
    for key in ["text", "vae"] {
      if case .string(let path)? = object[key] { object[key] = .string(resolve(path, against: manifest.baseDirectory)) }
    }
    return .object(object)
  }
}

extension BuildContext {
  /// The sample shape of a generator built on `denoiser` (its network's, else the teacher's or
  /// the data's) and what `generator.json` records of it: the entry with the network and
  /// `extra` keys.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` naming the entry when
  ///   nothing fixes the sample shape.
  public func generatorLayout(
    _ entry: ComponentEntry, denoiser: any SavableDenoiser, adding extra: [String: JSONValue] = [:]
  ) throws -> (sampleShape: [Int], config: JSONValue) {
    guard let sampleShape = denoiser.sampleShape ?? self.sampleShape else {
      throw DistillError.invalidValue(
        location: entry.path, expected: "a network, teacher or data source that fixes the sample shape", found: "none")
    }
    var config = entry.resolvedJSON
    if case .object(var object) = config {
      object["network"] = denoiser.networkJSON
      object.merge(extra) { _, new in new }
      config = .object(object)
    }
    return (sampleShape, config)
  }
}

extension Denoiser {
  /// The diffusion training loss at `x0`: noise it at `timesteps` with `noise` (shaped like `x0`)
  /// and regress the raw network output for `condition` on its target (ε, x₀ or v, as
  /// ``prediction`` says).
  public func denoisingLoss(x0: Tensor, timesteps: [Int], noise: Tensor, condition: Condition = .none) -> Tensor {
    let xt = schedule.addNoise(x0: x0, noise: noise, timesteps: timesteps)
    let output = self(xt, timesteps: timesteps.map(Float.init), condition: condition)
    let target: Tensor
    switch prediction {
    case .epsilon: target = noise
    case .sample: target = x0
    case .vPrediction: target = schedule.velocity(x0: x0, noise: noise, timesteps: timesteps)
    }
    return Tensor.mseLoss(output, target)
  }
}
