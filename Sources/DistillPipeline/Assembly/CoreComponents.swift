import DistillCore
import DistillDiffusion

/// Builds the noise schedule (and the prediction type new networks are trained for).
public protocol ScheduleComponent: ComponentDescribing {
  static func make(_ entry: ComponentEntry) throws -> (config: ScheduleConfig, prediction: Prediction)
}

/// Builds an optimizer over a list of parameters.
public protocol OptimizerComponent: ComponentDescribing {
  static func make(_ entry: ComponentEntry, parameters: [NamedParameter]) -> any Optimizer
}

/// The DDPM family of schedules, as diffusers' `DDPMScheduler` computes them.
public enum DDPMSchedule: ScheduleComponent {
  public static let id = "ddpm"
  public static let summary = "a DDPM noise schedule (betas linear, scaled_linear or squaredcos_cap_v2), as diffusers computes it"
  public static let parameters: [ParameterSpec] = [
    .choice("betas", NoiseSchedule.BetaSchedule.self, default: .linear, "how betas grow"),
    ParameterSpec("betaStart", .number(1e-8...0.5), default: .number(0.0001), "the first beta"),
    ParameterSpec("betaEnd", .number(1e-8...0.999), default: .number(0.02), "the last beta"),
    ParameterSpec("steps", .integer(2...100_000), default: .number(1000), "training timesteps T"),
    .choice("prediction", Prediction.self, default: .epsilon, "what a network trained on this schedule predicts"),
    ParameterSpec("rescaleZeroTerminalSNR", .bool, default: .bool(false), "rescale betas to zero terminal SNR"),
  ]

  public static func make(_ entry: ComponentEntry) throws -> (config: ScheduleConfig, prediction: Prediction) {
    let config = ScheduleConfig(
      trainSteps: entry.int("steps"), betaSchedule: entry.choice("betas"),
      betaStart: entry.double("betaStart"), betaEnd: entry.double("betaEnd"),
      rescaleZeroTerminalSNR: entry.bool("rescaleZeroTerminalSNR"))
    guard config.betaStart < config.betaEnd || config.betaSchedule == .squaredCosCapV2 else {
      throw DistillError.invalidValue(
        location: "\(entry.path).betaEnd", expected: "a number above betaStart (\(config.betaStart))",
        found: String(config.betaEnd))
    }
    return (config, entry.choice("prediction"))
  }
}

/// The learning-rate schedules an optimizer entry can name.
public enum LearningRateScheduleKind: String, CaseIterable, Sendable {
  case constant, warmup, cosine
}

/// Parameters every optimizer entry shares: learning rate, its schedule, gradient clipping.
let commonOptimizerParameters: [ParameterSpec] = [
  ParameterSpec("lr", .number(0...10), default: .number(1e-4), "the base learning rate"),
  ParameterSpec("weightDecay", .number(0...10), default: .number(0), "weight decay"),
  .choice(
    "schedule", LearningRateScheduleKind.self, default: .constant,
    "the learning-rate schedule: constant, linear warm-up, or warm-up then cosine decay to minimumFactor at the last step"),
  ParameterSpec("warmupSteps", .integer(0...Int.max), default: .number(0), "steps of linear warm-up"),
  ParameterSpec("minimumFactor", .number(0...1), default: .number(0), "the cosine schedule's final factor"),
  .optional("clipGradientNorm", .number(1e-12...1e12), "clip the global gradient norm to this value"),
]

/// Adam (L2 weight decay), as torch.optim.Adam.
public enum AdamComponent: OptimizerComponent {
  public static let id = "adam"
  public static let summary = "Adam, as torch.optim.Adam"
  public static let parameters: [ParameterSpec] =
    commonOptimizerParameters + [
      ParameterSpec("betas", .numbers(count: 2), default: .array([.number(0.9), .number(0.999)]), "(beta1, beta2)"),
      ParameterSpec("eps", .number(0...1), default: .number(1e-8), "the denominator's epsilon"),
    ]

  public static func make(_ entry: ComponentEntry, parameters: [NamedParameter]) -> any Optimizer {
    let (lr, betas, eps, decay) = adamSettings(entry)
    return Adam(parameters, learningRate: lr, betas: betas, epsilon: eps, weightDecay: decay)
  }

  /// The learning rate, betas, epsilon and weight decay of an adam or adamw entry.
  static func adamSettings(_ entry: ComponentEntry) -> (Float, (Double, Double), Double, Double) {
    let betas = entry.numbers("betas")
    return (entry.float("lr"), (betas[0], betas[1]), entry.double("eps"), entry.double("weightDecay"))
  }
}

/// AdamW (decoupled weight decay), as torch.optim.AdamW.
public enum AdamWComponent: OptimizerComponent {
  public static let id = "adamw"
  public static let summary = "AdamW (decoupled weight decay), as torch.optim.AdamW"
  public static let parameters: [ParameterSpec] = AdamComponent.parameters

  public static func make(_ entry: ComponentEntry, parameters: [NamedParameter]) -> any Optimizer {
    let (lr, betas, eps, decay) = AdamComponent.adamSettings(entry)
    return AdamW(parameters, learningRate: lr, betas: betas, epsilon: eps, weightDecay: decay)
  }
}

/// SGD with momentum, as torch.optim.SGD.
public enum SGDComponent: OptimizerComponent {
  public static let id = "sgd"
  public static let summary = "SGD with optional (Nesterov) momentum, as torch.optim.SGD"
  public static let parameters: [ParameterSpec] =
    commonOptimizerParameters + [
      ParameterSpec("momentum", .number(0...1), default: .number(0), "momentum factor"),
      ParameterSpec("nesterov", .bool, default: .bool(false), "Nesterov momentum (needs a momentum)"),
    ]

  public static func make(_ entry: ComponentEntry, parameters: [NamedParameter]) -> any Optimizer {
    SGD(
      parameters, learningRate: entry.float("lr"), momentum: entry.double("momentum"),
      nesterov: entry.bool("nesterov") && entry.double("momentum") > 0, weightDecay: entry.double("weightDecay"))
  }
}

extension ComponentRegistry {
  /// The schedule and optimizers every pipeline has; component targets add the rest.
  public static var coreComponents: [any ComponentDescribing.Type] {
    [DDPMSchedule.self, AdamComponent.self, AdamWComponent.self, SGDComponent.self]
  }
}
