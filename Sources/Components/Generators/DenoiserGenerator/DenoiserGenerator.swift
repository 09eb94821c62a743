import DistillCore
import DistillDiffusion
import DistillPipeline

/// A denoiser sampled in a few deterministic steps from pure noise: at each timestep the
/// network's x̂₀, then (between steps) the DDIM move to the next timestep with the implied ε̂.
/// One step at t = T−1 is DMD's one-step generator.
public final class DenoiserSampleGenerator: DenoiserGenerator {
  public let denoiser: any SavableDenoiser
  /// The sampling timesteps, descending in `[0, T)`. A loss that trains the generator for
  /// another step count for a while (progressive distillation's rounds) sets them, so that
  /// evaluation samples as the generator is being trained; `generator.json` records them.
  public var timesteps: [Int] {
    didSet {
      precondition(
        !timesteps.isEmpty && zip(timesteps, timesteps.dropFirst()).allSatisfy { $0 > $1 }
          && timesteps.allSatisfy { (0..<denoiser.schedule.trainSteps).contains($0) },
        "sampling timesteps \(timesteps) are not descending in [0, \(denoiser.schedule.trainSteps))")
    }
  }
  public let sampleShape: [Int]
  public var noiseShape: [Int] { sampleShape }
  /// The generator's entry with its network; ``configJSON`` adds the timesteps.
  let baseConfig: JSONValue
  public var module: Module { denoiser.weightsModule! }

  init(denoiser: any SavableDenoiser, timesteps: [Int], sampleShape: [Int], config: JSONValue) {
    self.denoiser = denoiser
    self.timesteps = timesteps
    self.sampleShape = sampleShape
    self.baseConfig = config
  }

  public var configJSON: JSONValue {
    guard case .object(var object) = baseConfig else { return baseConfig }
    object["timesteps"] = .array(timesteps.map { .number(Double($0)) })
    return .object(object)
  }

  public func callAsFunction(_ noise: Tensor) -> Tensor {
    let n = noise.shape[0]
    var x = noise
    for (index, t) in timesteps.enumerated() {
      let steps = [Float](repeating: Float(t), count: n)
      let x0 = denoiser.x0(x, timesteps: steps)
      guard index + 1 < timesteps.count else { return x0 }
      let schedule = denoiser.schedule
      let (a, s) = (schedule.signalScale(t), schedule.noiseScale(t))
      let epsilon = (x - x0 * Float(a)) * Float(1 / s)
      let next = timesteps[index + 1]
      x = x0 * Float(schedule.signalScale(next)) + epsilon * Float(schedule.noiseScale(next))
    }
    return x
  }

  /// `steps` timesteps from T−1 down, evenly spaced ("trailing" spacing).
  public static func trailingTimesteps(steps: Int, trainSteps: Int) -> [Int] {
    (0..<steps).map { i in trainSteps - 1 - Int((Double(i) * Double(trainSteps) / Double(steps)).rounded()) }
  }
}

public enum DenoiserGeneratorComponent: GeneratorComponent {
  public static let id = "denoiser"
  public static let kind = ComponentKind.generator
  public static let summary = "a denoiser network (a copy of the teacher, or a new one) sampled in `steps` deterministic steps from pure noise"
  public static let parameters: [ParameterSpec] =
    trainableDenoiserParameters + [
    ParameterSpec("steps", .integer(1...1000), default: .number(1), "sampling steps, evenly spaced from T-1"),
    .optional("timesteps", .numbers(count: nil), "explicit integer timesteps, descending (replaces steps)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Generator {
    let (denoiser, _) = try context.makeTrainableDenoiser(entry)
    let trainSteps = denoiser.schedule.trainSteps
    let timesteps: [Int]
    if entry.has("timesteps") {
      timesteps = entry.numbers("timesteps").map { Int($0) }
      guard !timesteps.isEmpty, timesteps.allSatisfy({ (0..<trainSteps).contains($0) }),
        zip(timesteps, timesteps.dropFirst()).allSatisfy({ $0 > $1 })
      else {
        throw DistillError.invalidValue(
          location: "\(entry.path).timesteps", expected: "descending integers in [0, \(trainSteps - 1)]",
          found: "\(timesteps)")
      }
    } else {
      timesteps = DenoiserSampleGenerator.trailingTimesteps(steps: entry.int("steps"), trainSteps: trainSteps)
    }
    guard let sampleShape = denoiser.sampleShape ?? context.sampleShape else {
      throw DistillError.invalidValue(
        location: entry.path, expected: "a network, teacher or data source that fixes the sample shape", found: "none")
    }
    var config = entry.resolvedJSON
    if case .object(var object) = config {
      object["network"] = denoiser.networkJSON
      config = .object(object)
    }
    return DenoiserSampleGenerator(denoiser: denoiser, timesteps: timesteps, sampleShape: sampleShape, config: config)
  }
}
