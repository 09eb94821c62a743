import DistillCore
import DistillDiffusion
import DistillPipeline
import Foundation

/// Progressive distillation (Salimans & Ho 2022, `training_losses` of google-research
/// `diffusion_distillation`): one student DDIM step does the work of two teacher DDIM steps,
/// in rounds that halve the step count, each round's student the next round's teacher.
///
/// Round r (of R) distils a teacher sampling in `startSteps/2^r` DDIM steps into a student of
/// half as many. For data x, a student step i uniform in its grid, from t to s, with the
/// teacher's midpoint m, and z_t = α_t·x + σ_t·ε: the teacher steps t → m → s (DDIM, eta 0, no
/// clipping) to z_s, and the student's x̂₀ at t is regressed on the x that takes z_t to z_s in
/// one DDIM step,
///
///     x̃ = (z_s − (σ_s/σ_t)·z_t) / (α_s − (σ_s/σ_t)·α_t),   loss = mean w(t)·‖x̂_θ(z_t) − x̃‖²,
///
/// with w = max(SNR_t, 1) ("truncated SNR") by default. Grids are the trailing integer ones of
/// the `denoiser` generator, t_j = T−1 − round(j·T/n), ending at x₀ itself (α = 1, σ = 0); a
/// grid of n/2 steps is every other point of the grid of n.
///
/// Round 0's teacher is the manifest's; at each later round's first call the term copies the
/// generator's current weights into its own frozen teacher (checkpointed), and it sets the
/// generator to sample with the round's student steps, so evaluations follow the rounds.
/// Logs `pd/round` (1-based), `pd/student-steps`, `pd/distance` (mean per-sample
/// ‖x̂_θ − x̃‖) and `pd/output-gradient-norm` (‖∂loss/∂x̂_θ‖).
public final class ProgressiveDistillationTerm: LossTerm, Checkpointable {
  /// w(t) with SNR_t = ᾱ_t/(1 − ᾱ_t): the reference code's `mean_loss_weight_type`.
  public enum Weighting: String, CaseIterable, Sendable {
    /// max(SNR, 1): `snr_trunc`, both distillation configs' choice.
    case truncatedSNR = "truncated-snr"
    /// SNR: ε-MSE.
    case snr
    /// SNR + 1: v-MSE.
    case snrPlusOne = "snr+1"
    /// 1: x-MSE.
    case constant

    public func weight(snr: Double) -> Double {
      switch self {
      case .truncatedSNR: return Swift.max(snr, 1)
      case .snr: return snr
      case .snrPlusOne: return snr + 1
      case .constant: return 1
      }
    }
  }

  let generator: any SteppedDenoiserGenerator
  let original: any Denoiser
  /// The frozen teacher of rounds after the first: the previous round's student.
  let snapshot: any SavableDenoiser
  let schedule: NoiseSchedule
  public let startSteps: Int
  public let rounds: Int
  /// The first training step of each round (0 first).
  public let roundStarts: [Int]
  let weighting: Weighting
  /// The round whose teacher ``snapshot`` holds (0: the manifest's teacher is used).
  public private(set) var teacherRound = 0

  init(
    generator: any SteppedDenoiserGenerator, teacher: any Denoiser, startSteps: Int, rounds: Int, roundStarts: [Int],
    weighting: Weighting
  ) throws {
    self.generator = generator
    self.original = teacher
    snapshot = try DenoiserFolder.copy(of: generator.denoiser)
    snapshot.weightsModule!.eval()
    schedule = generator.denoiser.schedule
    self.startSteps = startSteps
    self.rounds = rounds
    self.roundStarts = roundStarts
    self.weighting = weighting
  }

  /// The round of training step `step` (0-based); the last round runs to the end of training.
  public func round(atStep step: Int) -> Int { roundStarts.lastIndex { $0 <= step } ?? 0 }

  /// The student's DDIM steps in `round`.
  public func studentSteps(round: Int) -> Int { startSteps >> (round + 1) }

  /// Point `j` of the `steps`-step trailing grid: T−1 − round(j·T/steps), and −1 (x₀ itself) at j = steps.
  public static func gridTimestep(_ j: Int, steps: Int, trainSteps: Int) -> Int {
    trainSteps - 1 - Int((Double(j) * Double(trainSteps) / Double(steps)).rounded())
  }

  /// One DDIM step (eta 0) from z at `from` to `to` with the teacher's x̂₀; x̂₀ itself when `to` is −1.
  static func ddimStep(
    _ z: Tensor, x0: Tensor, from: [(alpha: Double, sigma: Double)], to: [(alpha: Double, sigma: Double)]
  ) -> Tensor {
    let epsilon = (z - x0 * perSample(from.map(\.alpha), like: z)) * perSample(from.map { 1 / $0.sigma }, like: z)
    return x0 * perSample(to.map(\.alpha), like: z) + epsilon * perSample(to.map(\.sigma), like: z)
  }

  /// The x-target: the x̂₀ that takes z_t to z_s in one DDIM step,
  /// `(z_s − (σ_s/σ_t)·z_t)/(α_s − (σ_s/σ_t)·α_t)` (z_s itself when σ_s = 0).
  public static func xTarget(
    zt: Tensor, zs: Tensor, t: [(alpha: Double, sigma: Double)], s: [(alpha: Double, sigma: Double)]
  ) -> Tensor {
    let ratio = zip(s, t).map { $0.sigma / $1.sigma }
    let denominator = zip(zip(s, t), ratio).map { pair, r in pair.0.alpha - r * pair.1.alpha }
    return (zs - zt * perSample(ratio, like: zt)) * perSample(denominator.map { 1 / $0 }, like: zt)
  }

  /// The x-target for `zt` at grid timesteps `t`: the teacher's two DDIM steps t → m → s
  /// (without gradients), inverted to the x̂₀ of one student step t → s. A timestep −1 is x₀.
  public static func teacherTarget(
    _ zt: Tensor, t: [Int], m: [Int], s: [Int], teacher: any Denoiser, condition: Condition = .none
  ) -> Tensor {
    let schedule = teacher.schedule
    func scales(_ t: Int) -> (alpha: Double, sigma: Double) {
      t < 0 ? (1, 0) : (schedule.signalScale(t), schedule.noiseScale(t))
    }
    let (at, am, `as`) = (t.map(scales), m.map(scales), s.map(scales))
    return withoutGradients {
      let x0t = teacher.x0(zt, timesteps: t.map(Float.init), condition: condition)
      let zm = ddimStep(zt, x0: x0t, from: at, to: am)
      let x0m = teacher.x0(zm, timesteps: m.map(Float.init), condition: condition)
      let zs = ddimStep(zm, x0: x0m, from: am, to: `as`)
      return xTarget(zt: zt, zs: zs, t: at, s: `as`)
    }.detached()
  }

  /// `mean w·(x̂ − x̃)²` over the batch and values, one weight per sample.
  public static func weightedLoss(_ prediction: Tensor, _ target: Tensor, weights: [Double]) -> Tensor {
    ((prediction - target).square() * perSample(weights, like: prediction)).mean()
  }

  /// ‖∂loss/∂x̂‖ of ``weightedLoss(_:_:weights:)`` for `difference` = x̂ − x̃: 2wᵢ·δ/(values in the batch).
  public static func outputGradientNorm(_ difference: Tensor, weights: [Double]) -> Double {
    let norms = difference.square().sum(axes: Array(1..<difference.rank)).sqrt().scalars.map(Double.init)
    let scale = 2 / Double(difference.count)
    return zip(weights, norms).map { pow(scale * $0 * $1, 2) }.reduce(0, +).squareRoot()
  }

  /// Sets the round's teacher and the generator's sampling grid for `step`.
  func enterRound(atStep step: Int) throws {
    let current = round(atStep: step)
    if current > teacherRound {
      try snapshot.weightsModule!.load(generator.module.stateDict(), strict: true)
      teacherRound = current
    }
    let timesteps = trailingTimesteps(
      steps: studentSteps(round: current), trainSteps: schedule.trainSteps)
    if generator.timesteps != timesteps { generator.timesteps = timesteps }
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    try enterRound(atStep: context.step)
    let current = round(atStep: context.step)
    let teacher: any Denoiser = current == 0 ? original : snapshot
    guard let x = try context.batch().samples else {
      throw DistillError.invalidValue(
        location: "data", expected: "a data source with samples", found: "none in its batch")
    }
    let n = x.shape[0]
    let steps = studentSteps(round: current)
    let trainSteps = schedule.trainSteps
    let indices = context.integers(in: 0..<steps)
    let t = indices.map { Self.gridTimestep($0, steps: steps, trainSteps: trainSteps) }
    let m = indices.map { Self.gridTimestep(2 * $0 + 1, steps: 2 * steps, trainSteps: trainSteps) }
    let s = indices.map { Self.gridTimestep($0 + 1, steps: steps, trainSteps: trainSteps) }
    let noise = context.normal(x.shape)
    let zt = schedule.addNoise(x0: x, noise: noise, timesteps: t)
    let condition = try context.batchCondition()
    let target = Self.teacherTarget(zt, t: t, m: m, s: s, teacher: teacher, condition: condition)
    let prediction = generator.denoiser.x0(zt, timesteps: t.map(Float.init), condition: condition)
    let weights = t.map { weighting.weight(snr: schedule.snr($0)) }
    let loss = Self.weightedLoss(prediction, target, weights: weights)

    let difference = prediction.detached() - target
    let norms = difference.square().sum(axes: Array(1..<x.rank)).sqrt().scalars.map(Double.init)
    context.log("pd/round", Double(current + 1))
    context.log("pd/student-steps", Double(steps))
    context.log("pd/distance", norms.reduce(0, +) / Double(n))
    context.log("pd/output-gradient-norm", Self.outputGradientNorm(difference, weights: weights))
    return loss
  }

  // MARK: Checkpointable

  public func checkpointState() -> [String: Tensor] {
    var state: [String: Tensor] = ["round": Tensor(shape: [1], scalars: [Float(teacherRound)])]
    for (name, value) in snapshot.weightsModule!.stateDict() { state["teacher.\(name)"] = value }
    return state
  }

  public func restore(_ state: [String: Tensor]) throws {
    guard let round = state["round"], round.shape == [1], let value = round.scalars.first,
      value.isFinite, value == value.rounded(), (0..<rounds).contains(Int(value))
    else {
      throw DistillError.stateDictMismatch(problems: ["'round': missing or not a round of 0..<\(rounds)"])
    }
    var weights: [String: Tensor] = [:]
    for (key, value) in state where key.hasPrefix("teacher.") {
      weights[String(key.dropFirst("teacher.".count))] = value
    }
    try snapshot.weightsModule!.load(weights, strict: true)
    teacherRound = Int(value)
  }
}

public enum ProgressiveDistillation: LossComponent {
  public static let id = "progressive-distillation"
  public static let summary =
    "progressive distillation (Salimans & Ho 2022): one student DDIM step regresses two teacher steps, in rounds that halve the steps"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "startSteps", .integer(2...100_000), default: .number(64),
      "the manifest teacher's DDIM steps in the first round; the generator's `steps` times a power of two (2^rounds)"),
    .optional(
      "roundSteps", .numbers(count: nil),
      "training steps of each round, in order; a shorter list repeats its last length, and the last round runs "
        + "to the end (default: training.steps split evenly)"),
    .choice("weighting", ProgressiveDistillationTerm.Weighting.self, default: .truncatedSNR,
      "w(t) with SNR = ᾱ/(1−ᾱ): max(SNR, 1), SNR (ε-MSE), SNR+1 (v-MSE) or 1 (x-MSE)"),
    teacherGuidanceParameter,
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    let teacher = try context.guidedTeacher(for: entry)
    let generator = try context.requireGenerator(
      as: (any SteppedDenoiserGenerator).self, "\"denoiser\" (the student is sampled in DDIM steps)", for: entry)
    let trainSteps = generator.denoiser.schedule.trainSteps
    let finalSteps = generator.timesteps.count
    guard generator.timesteps == trailingTimesteps(steps: finalSteps, trainSteps: trainSteps)
    else {
      throw DistillError.invalidValue(
        location: "generator.timesteps",
        expected: "none: progressive distillation samples on its own trailing grid (set `steps`)",
        found: "\(generator.timesteps)")
    }
    let startSteps = entry.int("startSteps")
    var rounds = 0
    while finalSteps << rounds < startSteps { rounds += 1 }
    guard finalSteps << rounds == startSteps, rounds >= 1, startSteps <= trainSteps else {
      throw DistillError.invalidValue(
        location: "\(entry.path).startSteps",
        expected: "the generator's \(finalSteps) steps times a power of two (\(finalSteps * 2), \(finalSteps * 4), …), "
          + "at most the schedule's \(trainSteps) steps",
        found: String(startSteps))
    }
    let total = context.manifest.training.steps
    let lengths = entry.has("roundSteps") ? entry.numbers("roundSteps") : [Double(Swift.max(total / rounds, 1))]
    guard (1...rounds).contains(lengths.count), lengths.allSatisfy({ $0 >= 1 && $0 <= 1e12 && $0 == $0.rounded() })
    else {
      throw DistillError.invalidValue(
        location: "\(entry.path).roundSteps",
        expected: "1 to \(rounds) positive integers (one length per round, the last repeated for the rounds after it)",
        found: "[" + lengths.map { Int(exactly: $0).map(String.init) ?? String($0) }.joined(separator: ", ") + "]")
    }
    var roundStarts = [0]
    for round in 1..<Swift.max(rounds, 1) {
      roundStarts.append(roundStarts[round - 1] + Int(lengths[Swift.min(round - 1, lengths.count - 1)]))
    }
    guard roundStarts.last! < total else {
      throw DistillError.invalidValue(
        location: "\(entry.path).roundSteps",
        expected: "lengths that let all \(rounds) rounds start within training.steps (\(total))",
        found: "the last round starting at step \(roundStarts.last!)")
    }
    let term = try ProgressiveDistillationTerm(
      generator: generator, teacher: teacher, startSteps: startSteps, rounds: rounds, roundStarts: roundStarts,
      weighting: entry.choice("weighting"))
    // The generator keeps the final round's grid until training starts (`pipeline sample`
    // rebuilds the pipeline and samples the finished student).
    context.addCheckpointState(prefix: entry.path, term)
    return term
  }
}
