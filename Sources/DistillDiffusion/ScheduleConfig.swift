import Foundation

/// The parameters a DDPM-family noise schedule is built from (diffusers' `num_train_timesteps`,
/// `beta_schedule`, `beta_start`, `beta_end`, `trained_betas`, `rescale_betas_zero_snr`).
///
/// Teachers keep the config their schedule came from so that `denoiser.json` can state it
/// by its parameters rather than as a table of ᾱ.
public struct ScheduleConfig: Equatable, Sendable {
  public var trainSteps: Int
  public var betaSchedule: NoiseSchedule.BetaSchedule
  public var betaStart: Double
  public var betaEnd: Double
  /// Explicit betas (diffusers' `trained_betas`); when set they replace the beta schedule.
  public var trainedBetas: [Double]?
  public var rescaleZeroTerminalSNR: Bool

  /// diffusers' `DDPMScheduler` defaults: 1000 linear betas from 0.0001 to 0.02.
  public init(
    trainSteps: Int = 1000, betaSchedule: NoiseSchedule.BetaSchedule = .linear, betaStart: Double = 0.0001,
    betaEnd: Double = 0.02, trainedBetas: [Double]? = nil, rescaleZeroTerminalSNR: Bool = false
  ) {
    self.trainSteps = trainedBetas?.count ?? trainSteps
    self.betaSchedule = betaSchedule
    self.betaStart = betaStart
    self.betaEnd = betaEnd
    self.trainedBetas = trainedBetas
    self.rescaleZeroTerminalSNR = rescaleZeroTerminalSNR
  }

  /// The schedule, as diffusers computes it (float32 betas and cumulative product).
  public var schedule: NoiseSchedule {
    if let trainedBetas {
      var betas = trainedBetas.map { Float($0) }
      if rescaleZeroTerminalSNR { betas = rescaledToZeroTerminalSNR(betas) }
      return NoiseSchedule(alphasCumprod: torchCumprod(betas.map { 1 - $0 }).map(Double.init))
    }
    return .ddpm(
      betas: betaSchedule, start: betaStart, end: betaEnd, steps: trainSteps,
      rescaleZeroTerminalSNR: rescaleZeroTerminalSNR)
  }

  /// One line, e.g. `linear betas 0.0001...0.02, 1000 steps`.
  public var summary: String {
    let base =
      trainedBetas != nil
      ? "\(trainSteps) trained betas"
      : "\(betaSchedule.rawValue) betas \(betaStart)...\(betaEnd), \(trainSteps) steps"
    return base + (rescaleZeroTerminalSNR ? ", rescaled to zero terminal SNR" : "")
  }

  /// The most training timesteps a schedule may have; the ᾱ table is allocated at this size,
  /// so a larger `num_train_timesteps` in a file is refused (diffusers' default is 1000).
  public static let maximumTrainSteps = 100_000

  /// Checks the ranges; errors name the keys as the file spells them: diffusers'
  /// (`num_train_timesteps`, ...) or, with `denoiserJSON`, those of `denoiser.json`.
  func validate(location: String, denoiserJSON: Bool = false) throws {
    let (stepsKey, betasKey, startKey, endKey) =
      denoiserJSON
      ? ("trainSteps", "trainedBetas", "betaStart", "betaEnd")
      : ("num_train_timesteps", "trained_betas", "beta_start", "beta_end")
    if let trainedBetas {
      guard trainedBetas.count >= 2, trainedBetas.allSatisfy({ $0 > 0 && $0 <= 1 }) else {
        throw DistillError.invalidValue(
          location: "\(location): \(betasKey)", expected: "at least two betas in (0, 1]",
          found: "\(trainedBetas.count) values")
      }
      return
    }
    guard trainSteps >= 2, trainSteps <= Self.maximumTrainSteps else {
      throw DistillError.invalidValue(
        location: "\(location): \(stepsKey)", expected: "an integer in 2...\(Self.maximumTrainSteps)",
        found: String(trainSteps))
    }
    guard betaSchedule == .squaredCosCapV2 || (betaStart > 0 && betaEnd > 0 && betaStart < 1 && betaEnd < 1) else {
      throw DistillError.invalidValue(
        location: "\(location): \(startKey)", expected: "\(startKey) and \(endKey) in (0, 1)",
        found: "\(betaStart), \(betaEnd)")
    }
  }

  // MARK: diffusers scheduler_config.json

  /// diffusers schedulers whose config describes a discrete VP schedule with the beta keys.
  public static let diffusersSchedulerClasses: Set<String> = [
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
    "LMSDiscreteScheduler", "HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "DEISMultistepScheduler",
    "UniPCMultistepScheduler", "LCMScheduler", "TCDScheduler", "DDIMInverseScheduler", "DDPMParallelScheduler",
    "DDIMParallelScheduler",
  ]

  /// Reads a diffusers `scheduler_config.json`: the schedule and the prediction type.
  ///
  /// The keys that define the schedule are read strictly (wrong types and unsupported values
  /// are errors naming `source` and the key); all other keys configure a sampler only
  /// (`timestep_spacing`, `clip_sample`, `steps_offset`, ...) and are ignored.
  public static func decodeDiffusers(_ data: Data, source: String) throws -> (ScheduleConfig, Prediction) {
    var r = try JSONObjectReader(JSONValue.parse(data, source: source), location: source)
    if let name = try r.string("_class_name"), !diffusersSchedulerClasses.contains(name) {
      throw DistillError.invalidValue(
        location: "\(source): _class_name", expected: "a discrete VP scheduler (DDPMScheduler, DDIMScheduler, ...)",
        found: "\"\(name)\"")
    }
    var config = ScheduleConfig()
    config.trainSteps = try r.int("num_train_timesteps", default: 1000)
    config.betaStart = try r.double("beta_start") ?? 0.0001
    config.betaEnd = try r.double("beta_end") ?? 0.02
    config.betaSchedule = try r.choice("beta_schedule", default: .linear)
    if let betas = try r.doubleArray("trained_betas") {
      config.trainedBetas = betas
      config.trainSteps = betas.count
    }
    config.rescaleZeroTerminalSNR = try r.bool("rescale_betas_zero_snr", default: false)
    let prediction: Prediction = try r.choice("prediction_type", default: .epsilon)
    _ = try r.choice("timestep_type", ["discrete"], default: "discrete")
    try config.validate(location: source)
    return (config, prediction)
  }

  // MARK: denoiser.json

  /// The `schedule` object of `denoiser.json`.
  public var json: JSONValue {
    var object: [String: JSONValue] = [
      "trainSteps": .number(Double(trainSteps)),
      "rescaleZeroTerminalSNR": .bool(rescaleZeroTerminalSNR),
    ]
    if let trainedBetas {
      object["trainedBetas"] = .array(trainedBetas.map { .number($0) })
    } else {
      object["betaSchedule"] = .string(betaSchedule.rawValue)
      object["betaStart"] = .number(betaStart)
      object["betaEnd"] = .number(betaEnd)
    }
    return .object(object)
  }

  /// The `schedule` object of `denoiser.json` for `schedule`: its parameters when `config`
  /// produces it, else the explicit ᾱ table (`{"alphasCumprod": [...]}`).
  public static func json(for schedule: NoiseSchedule, config: ScheduleConfig?) -> JSONValue {
    if let config, config.schedule == schedule { return config.json }
    return .object(["alphasCumprod": .array(schedule.alphasCumprod.map { .number($0) })])
  }

  /// Reads the `schedule` object of `denoiser.json` (either form of ``json(for:config:)``).
  /// Keys are strict; `location` names the file and path in errors.
  public static func decodeDenoiserJSON(_ value: JSONValue, location: String) throws -> (
    NoiseSchedule, ScheduleConfig?
  ) {
    var r = try JSONObjectReader(value, location: location)
    if let table = r.value("alphasCumprod") {
      try r.rejectUnknownKeys()
      guard case .array(let items) = table, items.count >= 1 else {
        throw DistillError.invalidValue(
          location: "\(location): alphasCumprod", expected: "a non-empty array of numbers", found: table.summary)
      }
      let values = try items.map { item -> Double in
        guard case .number(let v) = item, v >= 0, v <= 1 else {
          throw DistillError.invalidValue(
            location: "\(location): alphasCumprod", expected: "numbers in [0, 1]", found: item.summary)
        }
        return v
      }
      guard zip(values, values.dropFirst()).allSatisfy({ $0 >= $1 }) else {
        throw DistillError.invalidValue(
          location: "\(location): alphasCumprod", expected: "a non-increasing table", found: "an increasing step")
      }
      return (NoiseSchedule(alphasCumprod: values), nil)
    }
    var config = ScheduleConfig()
    config.trainSteps = try r.int("trainSteps", default: 1000)
    config.betaSchedule = try r.choice("betaSchedule", default: .linear)
    config.betaStart = try r.double("betaStart") ?? 0.0001
    config.betaEnd = try r.double("betaEnd") ?? 0.02
    if let betas = try r.doubleArray("trainedBetas") {
      config.trainedBetas = betas
      config.trainSteps = betas.count
    }
    config.rescaleZeroTerminalSNR = try r.bool("rescaleZeroTerminalSNR", default: false)
    try r.rejectUnknownKeys()
    try config.validate(location: location, denoiserJSON: true)
    return (config.schedule, config)
  }
}
