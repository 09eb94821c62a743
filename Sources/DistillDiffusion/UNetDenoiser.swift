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

  public func callAsFunction(_ x: Tensor, timesteps: [Float]) -> Tensor { unet(x, timesteps: timesteps) }
}

extension UNetDenoiser: FeatureTapping {
  public func features(_ x: Tensor, timesteps: [Float]) -> NetworkFeatures { unet.features(x, timesteps: timesteps) }
}
