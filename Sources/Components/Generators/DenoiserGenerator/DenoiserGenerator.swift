import DistillCore
import DistillDiffusion
import DistillPipeline

/// A denoiser sampled in a few steps from pure noise: at each timestep the network's x̂₀,
/// then (between steps) a move to the next timestep, either the DDIM move with the implied ε̂
/// (deterministic) or x̂₀ noised afresh (DMD2's multi-step generator; the noise of one sample
/// then holds one sample's worth per step, stacked on the first axis). One step at t = T−1 is
/// DMD's one-step generator.
///
/// With `clipSample` every x̂₀ is clamped to [−1, 1] (diffusers' `clip_sample`); a generator
/// that predicts ε on images does so by default, since its x̂₀ near t = T−1 divides ε̂'s
/// errors by α = √ᾱ (docs/methods.md, "Students of an ε-prediction teacher").
///
/// With backward simulation (DMD2 §4.5) the losses train it on what sampling feeds each step:
/// a step index k is drawn per sample, the generator runs from pure noise through steps
/// 0..<k without gradients, and its x̂₀ at t_k (with gradients) is the training sample.
///
/// With noised data (ADD §3.1) the input of a step is real data instead: per sample a step
/// index k, the data batch noised to t_k, x_k = α_k·x₀ + σ_k·ε, and the x̂₀ there. The first
/// step must be at T−1 and its input is pure noise (zero terminal SNR, enforced whatever the
/// schedule's α at T−1), as sampling starts from pure noise.
public final class DenoiserSampleGenerator: SteppedDenoiserGenerator, TrainingSampleGenerator {
  public enum Stepping: String, CaseIterable, Sendable {
    case ddim
    case renoise
  }

  /// What the losses train the generator on.
  public enum TrainingInput: String, CaseIterable, Sendable {
    /// Full sampling from noise, with gradients through every step.
    case sampling
    /// One random step per sample, its input made by the earlier steps without gradients (DMD2 §4.5).
    case backwardSimulation = "backward-simulation"
    /// One random step per sample, its input the data batch noised to that step (ADD §3.1).
    case noisedData = "noised-data"
  }

  public let denoiser: any SavableDenoiser
  /// What the steps ask: ``denoiser`` with the entry's classifier-free guidance (itself at 1),
  /// so that a copy of a conditional teacher sampled in 50 steps is the teacher's guided DDIM-50.
  let sampling: any Denoiser
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
  public let stepping: Stepping
  /// Whether every x̂₀ is clamped to [−1, 1].
  public let clipSample: Bool
  /// Where training samples come from.
  public let trainingInput: TrainingInput
  /// Whether training samples come from backward simulation.
  public var backwardSimulation: Bool { trainingInput == .backwardSimulation }
  public let sampleShape: [Int]
  public var noiseShape: [Int] {
    stepping == .renoise ? [timesteps.count * sampleShape[0]] + sampleShape.dropFirst() : sampleShape
  }
  /// The generator's entry with its network; ``configJSON`` adds the timesteps.
  let baseConfig: JSONValue
  public var module: Module { denoiser.weightsModule! }

  init(
    denoiser: any SavableDenoiser, timesteps: [Int], stepping: Stepping = .ddim, clipSample: Bool = false,
    trainingInput: TrainingInput = .sampling, sampleShape: [Int], config: JSONValue, guidance: Double = 1
  ) {
    self.denoiser = denoiser
    self.sampling = denoiser.guided(guidance)
    self.timesteps = timesteps
    self.stepping = stepping
    self.clipSample = clipSample
    self.trainingInput = trainingInput
    self.sampleShape = sampleShape
    self.baseConfig = config
  }

  public var configJSON: JSONValue {
    guard case .object(var object) = baseConfig else { return baseConfig }
    object["timesteps"] = .array(timesteps.map { .number(Double($0)) })
    return .object(object)
  }

  /// Step `index`'s part of `noise`: the starting noise (0), or the fresh noise of the move
  /// after step `index − 1` (renoise stepping).
  func noisePart(_ noise: Tensor, _ index: Int) -> Tensor {
    guard stepping == .renoise, timesteps.count > 1 else { return noise }
    let n = noise.shape[0]
    return noise.reshaped([n, timesteps.count, sampleShape[0]] + sampleShape.dropFirst())
      .sliced(axis: 1, index..<(index + 1)).reshaped([n] + sampleShape)
  }

  /// The network's x̂₀ at `x` for `condition` (guided), clamped to [−1, 1] with ``clipSample``.
  func estimate(_ x: Tensor, timesteps: [Float], condition: Condition) -> Tensor {
    clipped(sampling.x0(x, timesteps: timesteps, condition: condition))
  }

  func clipped(_ x0: Tensor) -> Tensor { clipSample ? x0.clamp(min: -1, max: 1) : x0 }

  /// The network's x̂₀ (clamped with ``clipSample``) and ε̂ at `x` for `condition` (guided),
  /// from one call. With ``clipSample`` the ε̂ is the clamped x̂₀'s, `(x − α·x̂₀)/σ`
  /// (diffusers' `use_clipped_model_output`): moving with the network's own ε̂ beside a
  /// clamped x̂₀ ruined a guided ε teacher's samples (docs/methods.md).
  func estimates(_ x: Tensor, timestep t: Int, condition: Condition) -> (x0: Tensor, epsilon: Tensor) {
    let timesteps = [Float](repeating: Float(t), count: x.shape[0])
    let (alpha, sigma) = denoiser.scales(timesteps)
    let output = sampling(x, timesteps: timesteps, condition: condition)
    let prediction = denoiser.prediction
    let x0 = clipped(NoiseSchedule.x0(from: output, prediction: prediction, xt: x, alpha: alpha, sigma: sigma))
    return clipSample
      ? (x0, NoiseSchedule.epsilon(from: x0, prediction: .sample, xt: x, alpha: alpha, sigma: sigma))
      : (x0, NoiseSchedule.epsilon(from: output, prediction: prediction, xt: x, alpha: alpha, sigma: sigma))
  }

  /// From x at step `index` with the network's (clamped) `x0` and `epsilon` there to x at step
  /// `index + 1`.
  func move(_ x: Tensor, x0: Tensor, epsilon: Tensor, from index: Int, noise: Tensor) -> Tensor {
    let schedule = denoiser.schedule
    let next = timesteps[index + 1]
    let (a, s) = (Float(schedule.signalScale(next)), Float(schedule.noiseScale(next)))
    switch stepping {
    case .renoise:
      return x0 * a + noisePart(noise, index + 1) * s
    case .ddim:
      return x0 * a + epsilon * s
    }
  }

  public var classes: ClassConditioning? { denoiser.classes }
  public var prompts: PromptConditioning? { denoiser.prompts }

  public var trainsOnData: Bool { trainingInput == .noisedData }

  public var trainingSteps: Int { trainingInput == .sampling ? 1 : timesteps.count }

  public func sample(_ noise: Tensor, condition: Condition, progress: (_ done: Int, _ total: Int) -> Void) -> Tensor {
    var x = noisePart(noise, 0)
    for (index, t) in timesteps.enumerated() {
      let (x0, epsilon) = estimates(x, timestep: t, condition: condition)
      progress(index + 1, timesteps.count)
      guard index + 1 < timesteps.count else { return x0 }
      x = move(x, x0: x0, epsilon: epsilon, from: index, noise: noise)
    }
    return x
  }

  /// Backward simulation when it is on (else sampling): per sample a step index k uniform in
  /// `0..<steps`; steps before k run without gradients; the x̂₀ at t_k records gradients.
  public func trainingSample(_ noise: Tensor, condition: Condition, context: StepContext) -> Tensor {
    switch trainingInput {
    case .sampling:
      return self(noise, condition: condition)
    case .backwardSimulation:
      guard timesteps.count > 1 else { return self(noise, condition: condition) }
      let indices = context.integers(in: 0..<timesteps.count)
      context.generatorSteps = indices
      let (steps, input) = simulateBackward(noise, indices: indices, condition: condition)
      return estimate(input, timesteps: steps.map(Float.init), condition: condition)
    case .noisedData:
      // The build checked that a data source of the sample shape exists.
      guard let data = try? context.batch().samples else {
        preconditionFailure("noised-data training input without a data batch of shape \(sampleShape)")
      }
      let indices = context.integers(in: 0..<timesteps.count)
      context.generatorSteps = indices
      let input = noisedData(data, noise: noisePart(noise, 0), indices: indices)
      return estimate(input, timesteps: indices.map { Float(timesteps[$0]) }, condition: condition)
    }
  }

  /// Data `x0` noised to each sample's step `indices[i]` with `noise`: α·x₀ + σ·ε at the
  /// step's timestep, and pure noise at step 0 (t = T−1, zero terminal SNR).
  public func noisedData(_ x0: Tensor, noise: Tensor, indices: [Int]) -> Tensor {
    let schedule = denoiser.schedule
    let a = indices.map { $0 == 0 ? 0 : schedule.signalScale(timesteps[$0]) }
    let s = indices.map { $0 == 0 ? 1 : schedule.noiseScale(timesteps[$0]) }
    return (x0 * perSample(a, like: x0) + noise * perSample(s, like: x0)).detached()
  }

  /// The inputs at each sample's step `indices[i]` and those steps' timesteps, made without
  /// gradients from `noise` by the steps before.
  public func simulateBackward(_ noise: Tensor, indices: [Int], condition: Condition = .none) -> (
    timesteps: [Int], input: Tensor
  ) {
    let input = withoutGradients {
      var x = noisePart(noise, 0)
      var input = x
      for index in 0..<(indices.max() ?? 0) {
        let (x0, epsilon) = estimates(x, timestep: timesteps[index], condition: condition)
        x = move(x, x0: x0, epsilon: epsilon, from: index, noise: noise)
        let arrived = indices.map { $0 == index + 1 ? 1.0 : 0 }
        input = input * perSample(arrived.map { 1 - $0 }, like: x) + x * perSample(arrived, like: x)
      }
      return input
    }
    return (indices.map { timesteps[$0] }, input.detached())
  }

}

public enum DenoiserGeneratorComponent: GeneratorComponent {
  public static let id = "denoiser"
  public static let summary = "a denoiser network (a copy of the teacher, or a new one) sampled in `steps` deterministic steps from pure noise"
  public static let parameters: [ParameterSpec] =
    trainableDenoiserParameters + [
    ParameterSpec(
      "steps", .integer(1...1000), default: .number(1),
      "sampling steps, evenly spaced from T-1; one step of a generator reading epsilon on images starts at T/2-1 (docs/teachers.md)"),
    .optional("timesteps", .numbers(count: nil), "explicit integer timesteps, descending (replaces steps)"),
    .choice("stepping", DenoiserSampleGenerator.Stepping.self, default: .ddim,
      "between steps: the DDIM move with the implied noise (deterministic), or x̂₀ noised afresh (DMD2)"),
    .optional(
      "clipSample", .bool,
      "clamp every x̂₀ to [−1, 1] (diffusers' clip_sample); default: true when the generator predicts epsilon on images ([C, H, W], not latents), else false"),
    ParameterSpec(
      "backwardSimulation", .bool, default: .bool(false),
      "train on one random step per sample, its input made by the earlier steps without gradients (DMD2 §4.5); the same as trainingInput \"backward-simulation\""),
    .optionalChoice(
      "trainingInput", DenoiserSampleGenerator.TrainingInput.self,
      "what the losses train on: full sampling from noise, backward simulation, or the data batch noised to a random step, pure noise at T−1 (ADD §3.1); default from backwardSimulation"),
    ParameterSpec(
      "guidance", .number(0...100), default: .number(1),
      "classifier-free guidance of every step's x̂₀ (1 = none; a class-conditional network with a null class): a copy of the teacher in 50 steps is its guided DDIM-50"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Generator {
    let (denoiser, _) = try context.makeTrainableDenoiser(entry, reparameterisingEpsilon: true)
    let trainSteps = denoiser.schedule.trainSteps
    let sampleShape = try context.generatorLayout(entry, denoiser: denoiser).sampleShape
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
    } else if entry.int("steps") == 1, readsEpsilonOnImages(denoiser, sampleShape),
      entry.optionalChoice("trainingInput") as DenoiserSampleGenerator.TrainingInput? != .noisedData
    {
      timesteps = [oneStepEpsilonStart(trainSteps: trainSteps)]
    } else {
      timesteps = trailingTimesteps(steps: entry.int("steps"), trainSteps: trainSteps)
    }
    guard denoiser.prediction != .epsilon || denoiser.schedule.alphaBar(timesteps[0]) > 0 else {
      throw DistillError.invalidValue(
        location: "\(entry.path).prediction",
        expected: "\"v_prediction\" or \"sample\" at t = \(timesteps[0]), where the schedule's ᾱ is 0 (zero terminal SNR: x̂₀ = (x − σ·ε̂)/α divides by α = 0)",
        found: "\"epsilon\"")
    }
    let clip = entry.has("clipSample") ? entry.bool("clipSample") : readsEpsilonOnImages(denoiser, sampleShape)
    let config = try context.generatorLayout(entry, denoiser: denoiser, adding: ["clipSample": .bool(clip)]).config
    let input = try trainingInput(entry, context, timesteps: timesteps, sampleShape: sampleShape)
    _ = try BuildContext.guided(denoiser, scale: entry.double("guidance"), location: "\(entry.path).guidance")
    return DenoiserSampleGenerator(
      denoiser: denoiser, timesteps: timesteps,
      stepping: entry.choice("stepping"), clipSample: clip,
      trainingInput: input, sampleShape: sampleShape, config: config, guidance: entry.double("guidance"))
  }

  /// Whether the generator reads ε on images (`[C, H, W]`, not latents): its x̂₀ is then
  /// clamped by default, and a one-step copy starts below T.
  static func readsEpsilonOnImages(_ denoiser: any Denoiser, _ sampleShape: [Int]) -> Bool {
    denoiser.prediction == .epsilon && sampleShape.count == 3 && !(denoiser is any LatentDenoiser)
  }

  /// Where a one-step ε generator on images starts by default: the middle of the schedule
  /// (t = 499 of 1000), not T − 1. Its x̂₀ = (x − σ·ε̂)/α carries ε̂'s errors times σ/α: 157 at
  /// t = 999 of linear betas, 3.4 at 499. On the Fashion-MNIST chain the student from 499 reached
  /// `FD_classifier` 1.42x its teacher's against the start at T − 1's 1.75x (docs/methods.md,
  /// "Students of an ε-prediction teacher").
  static func oneStepEpsilonStart(trainSteps: Int) -> Int { trainSteps / 2 - 1 }

  /// The entry's training input, checked: `backwardSimulation: true` agrees with it, and
  /// noised data has a data source of the sample shape and a first step at T−1.
  static func trainingInput(
    _ entry: ComponentEntry, _ context: BuildContext, timesteps: [Int], sampleShape: [Int]
  ) throws -> DenoiserSampleGenerator.TrainingInput {
    typealias Input = DenoiserSampleGenerator.TrainingInput
    let backward = entry.bool("backwardSimulation")
    guard let input: Input = entry.optionalChoice("trainingInput") else { return backward ? .backwardSimulation : .sampling }
    let name = input.rawValue
    guard !backward || input == .backwardSimulation else {
      throw DistillError.invalidValue(
        location: "\(entry.path).backwardSimulation", expected: "false (or absent) with trainingInput \"\(name)\"",
        found: "true")
    }
    guard input == .noisedData else { return input }
    guard let data = context.data, data.sampleShape == sampleShape else {
      throw DistillError.invalidValue(
        location: "\(entry.path).trainingInput",
        expected: "a data source of the generator's sample shape \(sampleShape) to noise (\"noised-data\")",
        found: context.data.map { "data of sample shape \($0.sampleShape)" } ?? "no data")
    }
    let last = context.schedule.trainSteps - 1
    guard timesteps.first == last else {
      throw DistillError.invalidValue(
        location: "\(entry.path).timesteps",
        expected: "a first step at T−1 = \(last) for \"noised-data\" (its input is pure noise, as at sampling)",
        found: "\(timesteps)")
    }
    return input
  }
}
