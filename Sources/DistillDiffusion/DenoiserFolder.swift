import DistillNN
import Foundation

/// A denoiser Distillery can save as a folder: `denoiser.json` (format, network, schedule,
/// prediction) and, for a network with parameters, `weights.safetensors` (float32).
///
/// ```json
/// {"format": "distillery-denoiser", "version": 1,
///  "network": {"type": "mlp", "inputSize": 2, "width": 128, "depth": 3, "outputSize": 2,
///              "timeEmbedding": 16, "activation": "silu"},
///  "schedule": {"betaSchedule": "linear", "betaStart": 0.0001, "betaEnd": 0.02, "trainSteps": 1000,
///               "rescaleZeroTerminalSNR": false},
///  "prediction": "epsilon"}
/// ```
///
/// `network` is also `{"type": "unet2d", "config": {<diffusers UNet2DModel config keys>},
/// "nullClass": k}` (`nullClass` for a class-conditional network trained with label dropout) or
/// `{"type": "gaussian-mixture", "means": [[...]], "std": s, "weights": [...], "sampleShape": [...],
/// "classes": [...]}` (no weights file). See docs/teachers.md.
public protocol SavableDenoiser: Denoiser {
  /// The `network` object of `denoiser.json`.
  var networkJSON: JSONValue { get }
  /// The module whose state dict is `weights.safetensors`; `nil` for an analytic denoiser.
  var weightsModule: Module? { get }
  /// The parameters of ``Denoiser/schedule`` when it was built from them.
  var scheduleConfig: ScheduleConfig? { get }
  /// Writes the denoiser into `folder` so that ``loadTeacher(path:)`` reads it back.
  func save(folder: String) throws
}

extension SavableDenoiser {
  /// Writes `denoiser.json` and (for a network with parameters) `weights.safetensors` into
  /// `folder`, creating it; each file is written to a temporary name and renamed.
  public func save(folder: String) throws {
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch {
      throw DistillError.io(path: folder, reason: "cannot create the folder: \(error.localizedDescription)")
    }
    let document: JSONValue = .object([
      "format": .string(DenoiserFolder.format),
      "version": .number(Double(DenoiserFolder.version)),
      "network": networkJSON,
      "schedule": ScheduleConfig.json(for: schedule, config: scheduleConfig),
      "prediction": .string(prediction.rawValue),
    ])
    if let module = weightsModule {
      try SafetensorsFile.write(
        module.stateDict(), metadata: ["format": "pt", "distillery": DenoiserFolder.format],
        to: (folder as NSString).appendingPathComponent(DenoiserFolder.weightsFileName))
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let path = (folder as NSString).appendingPathComponent(DenoiserFolder.configFileName)
    do {
      try encoder.encode(document).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
      throw DistillError.io(path: path, reason: "cannot write: \(error.localizedDescription)")
    }
  }
}

extension MLPDenoiser: SavableDenoiser {
  public var networkJSON: JSONValue { network.config.json }
  public var weightsModule: Module? { network }
}

extension UNetDenoiser: SavableDenoiser {
  public var networkJSON: JSONValue {
    var object: [String: JSONValue] = ["type": .string("unet2d"), "config": .object(unet.config.diffusersJSON())]
    if let nullClass { object["nullClass"] = .number(Double(nullClass)) }
    return .object(object)
  }
  public var weightsModule: Module? { unet }
}

extension GaussianMixtureDenoiser: SavableDenoiser {
  public var networkJSON: JSONValue {
    var object: [String: JSONValue] = [
      "type": .string("gaussian-mixture"),
      "means": .array(means.map { .array($0.map { .number($0) }) }),
      "std": .number(std),
      "weights": .array(weights.map { .number($0) }),
    ]
    if let sampleShape, sampleShape != [dimension] {
      object["sampleShape"] = .array(sampleShape.map { .number(Double($0)) })
    }
    if let componentClasses { object["classes"] = .array(componentClasses.map { .number(Double($0)) }) }
    return .object(object)
  }
  public var weightsModule: Module? { nil }
}

/// Reading Distillery's denoiser folders (see ``SavableDenoiser``).
public enum DenoiserFolder {
  public static let format = "distillery-denoiser"
  public static let version = 1
  public static let configFileName = "denoiser.json"
  public static let weightsFileName = "weights.safetensors"

  /// Loads a folder written by ``SavableDenoiser/save(folder:)``.
  ///
  /// - Throws: ``DistillError`` naming the file and key: a missing file, malformed JSON, a
  ///   wrong, unknown or unsupported key, or weights that do not fit the network (every
  ///   missing, unexpected and mis-shaped tensor listed).
  public static func load(folder: String) throws -> any SavableDenoiser {
    let path = (folder as NSString).appendingPathComponent(configFileName)
    var r = try JSONObjectReader(file: path, missing: "cannot read the denoiser config")
    let format = try r.string("format")
    let version = try r.int("version")
    let predictionName = try r.string("prediction")
    let scheduleValue = r.value("schedule")
    let networkValue = r.value("network")
    // Unknown keys first, so that a misspelt key is named rather than reported missing.
    try r.rejectUnknownKeys()
    try r.requireFormat(format, Self.format, version: version, Self.version)
    let predictions = Prediction.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
    guard let predictionName else {
      throw DistillError.invalidValue(
        location: "\(path): prediction", expected: "one of \(predictions)", found: "nothing")
    }
    guard let prediction = Prediction(rawValue: predictionName) else {
      throw DistillError.invalidValue(
        location: "\(path): prediction", expected: "one of \(predictions)", found: "\"\(predictionName)\"")
    }
    guard let scheduleValue else {
      throw DistillError.invalidValue(location: "\(path): schedule", expected: "an object", found: "nothing")
    }
    let (schedule, scheduleConfig) = try ScheduleConfig.decodeDenoiserJSON(scheduleValue, location: "\(path): schedule")
    guard let networkValue else {
      throw DistillError.invalidValue(location: "\(path): network", expected: "an object", found: "nothing")
    }

    let weightsPath = (folder as NSString).appendingPathComponent(weightsFileName)
    // A network with parameters needs its weights file, big enough for the configured
    // network, before the network is allocated.
    var needsWeights = false
    if case .object(let object) = networkValue, case .string(let type)? = object["type"] {
      needsWeights = type == "mlp" || type == "unet2d"
    }
    if needsWeights && !FileManager.default.fileExists(atPath: weightsPath) {
      throw DistillError.io(path: weightsPath, reason: "no weights file (a network with parameters needs one)")
    }
    var rng = RandomGenerator(seed: 0)
    let denoiser = try makeDenoiser(
      network: networkValue, schedule: schedule, scheduleConfig: scheduleConfig, prediction: prediction,
      location: "\(path): network", weightsPath: needsWeights ? weightsPath : nil, using: &rng)
    if let module = denoiser.weightsModule {
      if let unet = module as? UNet2DModel {
        try unet.loadWeights(path: weightsPath)
      } else {
        try loadWeightsChecked(module, path: weightsPath)
      }
      module.eval()
    }
    (denoiser as? UNetDenoiser)?.scheduleSource = path
    return denoiser
  }

  /// A denoiser built from the `network` object of `denoiser.json`, with freshly initialised
  /// weights drawn from `rng` (a seed-0 generator when omitted): the architecture half of
  /// ``load(folder:)``, and how a trainer makes a new network of a given architecture.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` at `location` for a
  ///   wrong, unknown or missing key.
  public static func makeDenoiser(
    network networkValue: JSONValue, schedule: NoiseSchedule, scheduleConfig: ScheduleConfig?,
    prediction: Prediction, location: String, weightsPath: String? = nil, using rng: inout RandomGenerator
  ) throws -> any SavableDenoiser {
    var n = try JSONObjectReader(networkValue, location: location)
    let type = try n.choice("type", ["mlp", "unet2d", "gaussian-mixture", "stable-diffusion"], default: "")
    switch type {
    case "stable-diffusion":
      return try TextToImageDenoiser.makeNew(
        network: networkValue, scheduleConfig: scheduleConfig ?? ScheduleConfig(), prediction: prediction,
        location: location, using: &rng)
    case "mlp":
      let config = try MLPDenoiserConfig.decode(&n)
      if let weightsPath {
        try SafetensorsFile.requireRoom(
          forParameters: config.parameterCount(location: location), path: weightsPath, model: "the MLP of \(location)")
      }
      let network = MLPDenoiserNetwork(config: config, using: &rng)
      let denoiser = MLPDenoiser(network: network, schedule: schedule, prediction: prediction)
      denoiser.scheduleConfig = scheduleConfig
      return denoiser
    case "unet2d":
      guard let configValue = n.value("config") else {
        throw DistillError.invalidValue(location: "\(location): config", expected: "an object", found: "nothing")
      }
      let nullClass = try n.int("nullClass")
      try n.rejectUnknownKeys()
      let config = try UNet2DConfig.decode(JSONEncoder().encode(configValue), source: "\(location).config")
      if let weightsPath {
        try SafetensorsFile.requireRoom(
          forParameters: config.parameterCount(source: "\(location).config"), path: weightsPath,
          model: "the UNet of \(location)")
      }
      let unet = UNet2DModel(config: config, using: &rng)
      let denoiser = UNetDenoiser(unet: unet, schedule: schedule, prediction: prediction)
      denoiser.scheduleConfig = scheduleConfig
      try denoiser.setNullClass(nullClass, location: "\(location): nullClass")
      return denoiser
    case "gaussian-mixture":
      let meansValue = n.value("means")
      let std = try n.double("std")
      let weightsValue = n.value("weights")
      let sampleShape = try n.intArray("sampleShape")
      let componentClasses = try n.intArray("classes")
      try n.rejectUnknownKeys()
      func numbers(_ value: JSONValue, _ key: String) throws -> [Double] {
        guard case .array(let items) = value else {
          throw DistillError.invalidValue(
            location: "\(location): \(key)", expected: "an array of numbers", found: value.summary)
        }
        return try items.map { item in
          guard case .number(let v) = item else {
            throw DistillError.invalidValue(location: "\(location): \(key)", expected: "numbers", found: item.summary)
          }
          return v
        }
      }
      guard case .array(let rows)? = meansValue else {
        throw DistillError.invalidValue(
          location: "\(location): means", expected: "an array of arrays of numbers",
          found: meansValue?.summary ?? "nothing")
      }
      let means = try rows.map { try numbers($0, "means") }
      guard let std else {
        throw DistillError.invalidValue(location: "\(location): std", expected: "a positive number", found: "nothing")
      }
      let weights = try weightsValue.map { try numbers($0, "weights") }
      let denoiser = try GaussianMixtureDenoiser(
        means: means, std: std, weights: weights, schedule: schedule, prediction: prediction,
        sampleShape: sampleShape, componentClasses: componentClasses, location: location)
      denoiser.scheduleConfig = scheduleConfig
      return denoiser
    default:
      throw DistillError.invalidValue(
        location: "\(location): type", expected: "one of \"mlp\", \"unet2d\", \"gaussian-mixture\"",
        found: "nothing")
    }
  }

  /// ``makeDenoiser(network:schedule:scheduleConfig:prediction:location:using:)`` with a seed-0 generator.
  public static func makeDenoiser(
    network: JSONValue, schedule: NoiseSchedule, scheduleConfig: ScheduleConfig?, prediction: Prediction,
    location: String
  ) throws -> any SavableDenoiser {
    var rng = RandomGenerator(seed: 0)
    return try makeDenoiser(
      network: network, schedule: schedule, scheduleConfig: scheduleConfig, prediction: prediction,
      location: location, using: &rng)
  }

  /// A trainable copy of `denoiser`: the same architecture and schedule, its own parameters
  /// holding the same values (DMD's fake score and generator start this way). The copy's
  /// output is read as `prediction` (default: the original's), the same weights reparameterised.
  public static func copy(of denoiser: any SavableDenoiser, prediction: Prediction? = nil) throws
    -> any SavableDenoiser
  {
    if let text = denoiser as? TextToImageDenoiser { return try text.copy(prediction: prediction) }
    let copy = try makeDenoiser(
      network: denoiser.networkJSON, schedule: denoiser.schedule, scheduleConfig: denoiser.scheduleConfig,
      prediction: prediction ?? denoiser.prediction, location: "copy of \(denoiser.summary)")
    if let source = denoiser.weightsModule, let target = copy.weightsModule {
      _ = try target.load(source.stateDict(), strict: true)
    }
    return copy
  }

  /// Loads `path` into `module` after checking every name and shape against the header.
  public static func loadWeightsChecked(_ module: Module, path: String) throws {
    let file = try SafetensorsFile.read(contentsOf: path)
    let expected = Dictionary(uniqueKeysWithValues: module.namedParameters().map { ($0.name, $0.parameter.shape) })
    var problems: [String] = []
    for (name, shape) in expected.sorted(by: { $0.key < $1.key }) {
      guard let info = file.info(name) else {
        problems.append("'\(name)': missing from the weights")
        continue
      }
      if info.shape != shape {
        problems.append("'\(name)': shape \(info.shape) in the weights, the configured network expects \(shape)")
      }
    }
    for name in file.keys where expected[name] == nil {
      problems.append("'\(name)': unexpected key, the configured network has no such parameter")
    }
    guard problems.isEmpty else {
      throw DistillError.malformed(path: path, detail: DistillError.stateDictMismatch(problems: problems).description)
    }
    try file.requireFinite()
    try module.load(file.tensors(), strict: true)
  }
}

/// Loads a teacher from `path`, recognising the kind of folder:
/// - a Distillery denoiser folder (`denoiser.json`, see ``DenoiserFolder``);
/// - a diffusers `UNet2DModel` folder (`config.json` + `diffusion_pytorch_model.safetensors`),
///   see ``UNetDenoiser/load(diffusersFolder:)``;
/// - a Stable-Diffusion-layout folder (`model_index.json`, `text_encoder/`, ...), see
///   ``TextToImageDenoiser``;
/// - a diffusers pipeline folder (`unet/config.json`, with `scheduler/scheduler_config.json`).
///
/// `path` may also name the `denoiser.json` or `config.json` file itself.
///
/// - Throws: ``DistillError`` naming the file (and key) that is missing or wrong.
public func loadTeacher(path: String) throws -> any Denoiser {
  let manager = FileManager.default
  var isDirectory: ObjCBool = false
  guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
    throw DistillError.io(path: path, reason: "no such file or folder")
  }
  var folder = path
  if !isDirectory.boolValue {
    let name = (path as NSString).lastPathComponent
    guard name == DenoiserFolder.configFileName || name == "config.json" else {
      throw DistillError.io(
        path: path, reason: "not a teacher: expected a folder with denoiser.json, config.json or unet/config.json")
    }
    folder = (path as NSString).deletingLastPathComponent
    if folder.isEmpty { folder = "." }
  }
  func exists(_ name: String) -> Bool { manager.fileExists(atPath: (folder as NSString).appendingPathComponent(name)) }
  if exists(DenoiserFolder.configFileName) { return try DenoiserFolder.load(folder: folder) }
  if StableDiffusionFolder.isTextToImage(folder: folder) { return try TextToImageDenoiser(folder: folder) }
  if exists("config.json") { return try UNetDenoiser.load(diffusersFolder: folder) }
  if exists("unet/config.json") {
    return try UNetDenoiser.load(diffusersFolder: (folder as NSString).appendingPathComponent("unet"))
  }
  throw DistillError.io(
    path: folder, reason: "not a teacher folder: no denoiser.json, config.json or unet/config.json in it")
}
