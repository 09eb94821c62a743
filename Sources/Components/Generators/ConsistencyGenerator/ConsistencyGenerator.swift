import DistillCore
import DistillDiffusion
import DistillPipeline
import Foundation

/// A consistency model as the student: a trainable VP denoiser read through
/// ``ConsistencyParameterisation``, sampled in `steps` steps (Song et al. 2023, Algorithm 1):
/// `x = f(σ₀·z₀, σ₀)`, then `x = f(x + √(σᵢ² − σ_min²)·zᵢ, σᵢ)`. One step starts at σ_max; with
/// more, σᵢ are the first `steps` points of a Karras (ρ = 7) ladder of `steps + 1` points from
/// σ_max to σ_min. Each step has its own noise, so the noise of one sample holds `steps`
/// samples' worth (stacked on the first axis).
public final class ConsistencySampleGenerator: ConsistencyModelGenerator {
  public let denoiser: any SavableDenoiser
  public let parameterisation: ConsistencyParameterisation
  /// The noise levels of sampling, from σ_max down.
  public let samplingSigmas: [Double]
  public let sampleShape: [Int]
  public let configJSON: JSONValue
  public var module: Module { denoiser.weightsModule! }

  public var noiseShape: [Int] { [samplingSigmas.count * sampleShape[0]] + sampleShape.dropFirst() }

  init(
    denoiser: any SavableDenoiser, parameterisation: ConsistencyParameterisation, steps: Int, sampleShape: [Int],
    config: JSONValue
  ) {
    self.denoiser = denoiser
    self.parameterisation = parameterisation
    let ladder = NoiseSchedule.karrasSigmas(
      count: steps + 1, sigmaMin: parameterisation.sigmaMin, sigmaMax: parameterisation.sigmaMax, rho: 7)
    self.samplingSigmas = Array(ladder.prefix(steps))
    self.sampleShape = sampleShape
    self.configJSON = config
  }

  public var classes: ClassConditioning? { denoiser.classes }
  public var prompts: PromptConditioning? { denoiser.prompts }

  /// f_θ(x, σ) of the trained network for `condition` (recording gradients when they are enabled).
  public func consistency(_ x: Tensor, sigmas: [Double], condition: Condition) -> Tensor {
    try! parameterisation(x, sigmas: sigmas, denoiser: ConsistencyParameterisation.edmDenoiser(denoiser, condition))
  }

  public func sample(_ noise: Tensor, condition: Condition, progress: (_ done: Int, _ total: Int) -> Void) -> Tensor {
    let n = noise.shape[0]
    let steps = samplingSigmas.count
    let stacked = noise.reshaped([n, steps, sampleShape[0]] + sampleShape.dropFirst())
    func z(_ i: Int) -> Tensor { steps == 1 ? noise : stacked.sliced(axis: 1, i..<(i + 1)).reshaped([n] + sampleShape) }
    var x = consistency(
      z(0) * Float(samplingSigmas[0]), sigmas: Array(repeating: samplingSigmas[0], count: n), condition: condition)
    progress(1, steps)
    for i in 1..<steps {
      let sigma = samplingSigmas[i]
      let scale = (sigma * sigma - parameterisation.sigmaMin * parameterisation.sigmaMin).squareRoot()
      x = consistency(x + z(i) * Float(scale), sigmas: Array(repeating: sigma, count: n), condition: condition)
      progress(i + 1, steps)
    }
    return x
  }
}

public enum ConsistencyGeneratorComponent: GeneratorComponent {
  public static let id = "consistency"
  public static let summary =
    "a consistency model: a denoiser network read through the skip/out scalings of Song et al. (2023), sampled in `steps` steps"
  public static let parameters: [ParameterSpec] =
    trainableDenoiserParameters + [
      ParameterSpec("steps", .integer(1...64), default: .number(1), "sampling steps (1: one step from σ_max)"),
      ParameterSpec("sigmaData", .number(1e-3...1e3), default: .number(0.5), "σ_d of the scalings"),
      .optional(
        "sigmaMin", .number(1e-6...1e6), "where f is the identity (default: the schedule's smallest σ, σ(0))"),
      .optional("sigmaMax", .number(1e-6...1e6), "where sampling starts (default: the schedule's largest σ, σ(T−1))"),
    ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Generator {
    let (denoiser, _) = try context.makeTrainableDenoiser(entry)
    let schedule = denoiser.schedule
    let (lowest, highest) = (schedule.sigma(0), schedule.sigma(schedule.trainSteps - 1))
    let range = "[\(lowest), \(highest)] (the schedule's σ(0) to σ(T−1), where the network is defined)"
    let sigmaMin = entry.optionalDouble("sigmaMin") ?? lowest
    let sigmaMax = entry.optionalDouble("sigmaMax") ?? highest
    guard sigmaMin >= lowest * (1 - 1e-9), sigmaMin < highest else {
      throw DistillError.invalidValue(
        location: "\(entry.path).sigmaMin", expected: "a σ in \(range)", found: "\(sigmaMin)")
    }
    guard sigmaMax > sigmaMin, sigmaMax <= highest * (1 + 1e-9) else {
      throw DistillError.invalidValue(
        location: "\(entry.path).sigmaMax", expected: "a σ above sigmaMin (\(sigmaMin)) in \(range)",
        found: "\(sigmaMax)")
    }
    let (sampleShape, config) = try context.generatorLayout(
      entry, denoiser: denoiser, adding: ["sigmaMin": .number(sigmaMin), "sigmaMax": .number(sigmaMax)])
    return ConsistencySampleGenerator(
      denoiser: denoiser,
      parameterisation: ConsistencyParameterisation(
        sigmaMin: sigmaMin, sigmaMax: sigmaMax, sigmaData: entry.double("sigmaData")),
      steps: entry.int("steps"), sampleShape: sampleShape, config: config)
  }
}
