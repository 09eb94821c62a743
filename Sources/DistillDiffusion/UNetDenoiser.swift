import DistillNN
import Foundation

/// A diffusers `UNet2DModel` with its schedule and prediction type.
///
/// ``load(diffusersFolder:)`` reads the network from `config.json` and
/// `diffusion_pytorch_model.safetensors`, and the schedule from the first
/// `scheduler_config.json` found:
/// 1. next to `config.json`;
/// 2. in `../scheduler/` (the folder is the `unet/` of a diffusers pipeline folder).
///
/// Without one the schedule is diffusers' `DDPMScheduler` default (1000 linear betas from
/// 0.0001 to 0.02, epsilon prediction), and ``scheduleSource`` says so.
public final class UNetDenoiser: Denoiser {
  public let unet: UNet2DModel
  public let schedule: NoiseSchedule
  /// The parameters of ``schedule`` when it was built from them (written to `denoiser.json`).
  public var scheduleConfig: ScheduleConfig?
  public let prediction: Prediction
  /// Where the schedule came from: a `scheduler_config.json` path, or that defaults were used.
  public var scheduleSource: String
  /// The label that means "no class" for a class-conditional network trained with label
  /// dropout (`nullClass` of `denoiser.json`, or the teacher entry's for a diffusers folder).
  public var nullClass: Int?

  public init(unet: UNet2DModel, schedule: NoiseSchedule, prediction: Prediction = .epsilon) {
    self.unet = unet
    self.schedule = schedule
    self.prediction = prediction
    self.scheduleSource = "given"
  }

  public init(unet: UNet2DModel, scheduleConfig: ScheduleConfig, prediction: Prediction = .epsilon) {
    self.unet = unet
    self.schedule = scheduleConfig.schedule
    self.scheduleConfig = scheduleConfig
    self.prediction = prediction
    self.scheduleSource = "given"
  }

  /// The default source text when no scheduler config is found.
  public static let defaultScheduleSource =
    "diffusers DDPMScheduler defaults (no scheduler_config.json next to config.json or in ../scheduler)"

  /// Loads a diffusers model folder (see the type's documentation for the schedule).
  ///
  /// - Throws: ``DistillError`` naming the file and key (see ``UNet2DModel/load(folder:)`` and
  ///   ``ScheduleConfig/decodeDiffusers(_:source:)``).
  public static func load(diffusersFolder folder: String) throws -> UNetDenoiser {
    let denoiser = try loadNetworkAndSchedule(diffusersFolder: folder)
    // A student exported by Distillery names its null class; diffusers ignores `_` keys.
    let configPath = (folder as NSString).appendingPathComponent("config.json")
    if let data = FileManager.default.contents(atPath: configPath),
      case .object(let object) = try JSONValue.parse(data, source: configPath), let value = object[nullClassKey]
    {
      guard case .number(let label) = value, label == label.rounded(), label >= 0, label < 16_777_216 else {
        throw DistillError.invalidValue(
          location: "\(configPath): \(nullClassKey)", expected: "a class index", found: value.summary)
      }
      try denoiser.setNullClass(Int(label), location: "\(configPath): \(nullClassKey)")
    }
    return denoiser
  }

  /// The `config.json` key of an exported class-conditional student's null class.
  public static let nullClassKey = "_distillery_null_class"

  private static func loadNetworkAndSchedule(diffusersFolder folder: String) throws -> UNetDenoiser {
    let unet = try UNet2DModel.load(folder: folder)
    let url = URL(fileURLWithPath: folder).standardizedFileURL
    let candidates = [
      url.appendingPathComponent("scheduler_config.json").path,
      url.deletingLastPathComponent().appendingPathComponent("scheduler/scheduler_config.json").path,
    ]
    for path in candidates where FileManager.default.fileExists(atPath: path) {
      guard let data = FileManager.default.contents(atPath: path) else {
        throw DistillError.io(path: path, reason: "cannot read the scheduler config")
      }
      let (config, prediction) = try ScheduleConfig.decodeDiffusers(data, source: path)
      let denoiser = UNetDenoiser(unet: unet, scheduleConfig: config, prediction: prediction)
      denoiser.scheduleSource = path
      return denoiser
    }
    let denoiser = UNetDenoiser(unet: unet, scheduleConfig: ScheduleConfig(), prediction: .epsilon)
    denoiser.scheduleSource = defaultScheduleSource
    return denoiser
  }

  /// Sets ``nullClass``, checked against the class embedding: the last row of a table, or any
  /// label of a `"timestep"` embedding.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` at `location` otherwise.
  public func setNullClass(_ label: Int?, location: String) throws {
    guard let label else { return nullClass = nil }
    switch unet.config.classEmbedding {
    case .table(let count)? where label == count - 1 && count >= 2: break
    case .timestep? where label >= 1: break
    case let kind:
      let expected: String
      switch kind {
      case .table(let count)?: expected = "the last class of num_class_embeds \(count) (\(count - 1)), with a class below it"
      case .timestep?: expected = "a positive label"
      default: expected = "no null class: the UNet takes no class labels (num_class_embeds)"
      }
      throw DistillError.invalidValue(location: location, expected: expected, found: String(label))
    }
    nullClass = label
  }

  public var sampleShape: [Int]? { unet.config.sampleSize.map { [unet.config.inChannels, $0, $0] } }

  public var summary: String {
    let c = unet.config
    return "UNet2DModel: \(c.inChannels)→\(c.outChannels) channels, blocks \(c.blockOutChannels), "
      + "\(unet.parameterCount) parameters; \(prediction.rawValue) prediction; schedule "
      + (scheduleConfig?.summary ?? "of \(schedule.trainSteps) steps") + " (\(scheduleSource))"
  }

  public func validateInput(shape: [Int], location: String) throws {
    let c = unet.config
    let factor = 1 << (c.blockOutChannels.count - 1)
    guard shape.count == 4, shape[1] == c.inChannels, shape[0] > 0, shape[2] > 0, shape[3] > 0,
      shape[2] % factor == 0, shape[3] % factor == 0
    else {
      throw DistillError.invalidValue(
        location: location,
        expected: "[N, \(c.inChannels), H, W] with H and W multiples of \(factor)", found: "shape \(shape)")
    }
  }

  /// Class labels for a table (`num_class_embeds`) or `"timestep"` class embedding; an
  /// `"identity"` embedding takes vectors, which only `pipeline predict` passes (to ``unet``).
  public var classes: ClassConditioning? {
    switch unet.config.classEmbedding {
    case .table(let count)?:
      // The null label is one of the table's rows: the real classes are those below it.
      return nullClass.map { ClassConditioning(count: $0, null: $0) } ?? ClassConditioning(count: count)
    case .timestep?: return ClassConditioning(count: nullClass ?? .max, null: nullClass)
    case .identity?, nil: return nil
    }
  }

  public func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Condition) -> Tensor {
    guard let classes else { return unet(x, timesteps: timesteps) }
    let labels = classes.labels(for: condition, count: x.shape[0])
    return unet(x, timesteps: timesteps, classLabels: Tensor(shape: [labels.count], scalars: labels.map(Float.init)))
  }
}

extension UNetDenoiser: FeatureTapping {
  /// The features at each sample's label (the null class for none).
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?) -> NetworkFeatures {
    unet.features(
      x, timesteps: timesteps, labels: classes.map { $0.labels(for: Condition(labels: labels), count: x.shape[0]) })
  }
}
