import DistillCore
import DistillDiffusion
import DistillNN
import DistillPipeline
import Foundation

/// Consistency distillation (Song et al. 2023, `consistency_losses` of openai/consistency_models).
///
/// For data x, an index n uniform in {0, …, N−2} of the Karras grid σ₀ = σ_max > … > σ_{N−1} = σ_min
/// (ρ = 7) and noise ε: `x_t = x + σ_n·ε`; one teacher ODE step (Heun or Euler) from σ_n to
/// σ_{n+1} gives x̂; the target is the EMA target network's `f_θ⁻(x̂, σ_{n+1})` (no gradient) and
///
///     loss = mean λ(σ_n)·d(f_θ(x_t, σ_n), f_θ⁻(x̂, σ_{n+1}))
///
/// with d the mean squared (l2) or absolute (l1) difference, pseudo-Huber
/// `√(‖a − b‖² + c²) − c` per sample, or the LPIPS distance of the two images (the paper's
/// choice for images; the data must be images in [-1, 1]). The target network θ⁻ ← μθ⁻ + (1 − μ)θ after every
/// generator update; the term owns it (a copy of the student) and checkpoints it.
/// Logs `cd/distance` (mean per-sample ‖f_θ − f_θ⁻‖), `cd/output-gradient-norm` (‖∂loss/∂f_θ‖)
/// and `cd/target-lag` (‖θ − θ⁻‖ over every parameter).
public final class ConsistencyDistillationTerm: LossTerm, Checkpointable {
  public enum Solver: String, CaseIterable, Sendable { case heun, euler }
  public enum Distance: String, CaseIterable, Sendable {
    case l2, l1
    case pseudoHuber = "pseudo-huber"
    case lpips
  }
  /// λ(σ) of the reference code (`get_weightings`), with SNR = 1/σ².
  public enum Weighting: String, CaseIterable, Sendable {
    case uniform, snr
    case snrPlusOne = "snr+1"
    case karras
    case truncatedSNR = "truncated-snr"

    public func weight(_ sigma: Double, sigmaData: Double) -> Double {
      let snr = 1 / (sigma * sigma)
      switch self {
      case .uniform: return 1
      case .snr: return snr
      case .snrPlusOne: return snr + 1
      case .karras: return snr + 1 / (sigmaData * sigmaData)
      case .truncatedSNR: return Swift.max(snr, 1)
      }
    }
  }

  let generator: any ConsistencyModelGenerator
  /// The teacher (with the entry's guidance); D(x; σ) in VE form is asked of it per batch.
  let teacher: any Denoiser
  /// σ₀ > … > σ_{N−1}.
  public let grid: [Double]
  let solver: Solver
  let distance: Distance
  /// The LPIPS network, for the `lpips` distance.
  let lpips: LPIPS?
  let huberC: Double
  let weighting: Weighting
  /// The target network θ⁻, averaged in place (one extra copy of the weights, no more).
  let target: any SavableDenoiser
  /// μ.
  let decay: Double
  /// The step of the last call, to update θ⁻ once per generator update.
  var lastStep: Int?

  init(
    generator: any ConsistencyModelGenerator, teacher: any Denoiser, gridPoints: Int, rho: Double, solver: Solver,
    distance: Distance, lpips: LPIPS? = nil, huberC: Double, weighting: Weighting, decay: Double
  ) throws {
    precondition((distance == .lpips) == (lpips != nil), "the lpips distance needs its network")
    self.generator = generator
    self.lpips = lpips
    self.teacher = teacher
    let p = generator.parameterisation
    grid = NoiseSchedule.karrasSigmas(count: gridPoints, sigmaMin: p.sigmaMin, sigmaMax: p.sigmaMax, rho: rho)
    self.solver = solver
    self.distance = distance
    self.huberC = huberC
    self.weighting = weighting
    target = try DenoiserFolder.copy(of: generator.denoiser)
    target.weightsModule!.eval()
    self.decay = decay
  }

  /// One teacher step from σ to σ' per sample: Euler, or Heun (Euler, then the trapezoidal
  /// correction with the slope at the Euler point).
  public static func teacherStep(
    _ x: Tensor, from sigmas: [Double], to next: [Double], solver: Solver, teacher: DenoisingModel
  ) rethrows -> Tensor {
    let d = (x - (try teacher(x, sigmas.map(Float.init)))) * perSample(sigmas.map { 1 / $0 }, like: x)
    let h = perSample(zip(next, sigmas).map { $0 - $1 }, like: x)
    let euler = x + d * h
    guard solver == .heun else { return euler }
    let dNext = (euler - (try teacher(euler, next.map(Float.init)))) * perSample(next.map { 1 / $0 }, like: x)
    return x + (d + dNext) * h * 0.5
  }

  /// `mean λ·d(online, target)` over the batch (d averaged over a sample's values for l2 and
  /// l1, the pseudo-Huber distance of the whole sample, or the LPIPS distance of the two
  /// images with `lpips`).
  public static func distanceLoss(
    _ online: Tensor, _ target: Tensor, weights: [Double], distance: Distance, huberC: Double, lpips: LPIPS? = nil
  ) -> Tensor {
    let axes = Array(1..<online.rank)
    let difference = online - target
    let perSampleDistance: Tensor
    switch distance {
    case .lpips:
      precondition(lpips != nil, "the lpips distance needs its network")
      perSampleDistance = lpips!(online, target)
    case .l2: perSampleDistance = difference.square().mean(axes: axes)
    case .l1: perSampleDistance = difference.abs().mean(axes: axes)
    case .pseudoHuber:
      perSampleDistance = (difference.square().sum(axes: axes) + Float(huberC * huberC)).sqrt() - Float(huberC)
    }
    let w = Tensor(shape: [weights.count], scalars: weights.map(Float.init))
    return (perSampleDistance * w).mean()
  }

  /// θ⁻ ← μθ⁻ + (1 − μ)θ, in Float as ``ExponentialMovingAverage`` computes it.
  func updateTarget() {
    let (keep, take) = (Float(decay), Float(1 - decay))
    withoutGradients {
      for (averaged, live) in zip(target.weightsModule!.namedParameters(), generator.module.namedParameters()) {
        averaged.parameter.assign(averaged.parameter.value * keep + live.parameter.value * take)
      }
    }
  }

  public func loss(_ context: StepContext) throws -> Tensor {
    if let lastStep, context.step > lastStep { updateTarget() }
    lastStep = context.step
    guard let x = try context.batch().samples else {
      throw DistillError.invalidValue(
        location: "data", expected: "a data source with samples", found: "none in its batch")
    }
    if distance == .lpips { try LPIPSOptions.checkedTarget(x, what: "the data's images", location: "data") }
    let n = x.shape[0]
    let indices = context.integers(in: 0..<(grid.count - 1))
    let sigmas = indices.map { grid[$0] }
    let next = indices.map { grid[$0 + 1] }
    let noise = context.normal(x.shape)
    let condition = try context.batchCondition()
    let xt = x + noise * perSample(sigmas, like: x)
    let targetValue = try withoutGradients {
      let stepped = try Self.teacherStep(
        xt, from: sigmas, to: next, solver: solver, teacher: ConsistencyParameterisation.edmDenoiser(teacher, condition))
      return try generator.parameterisation(
        stepped, sigmas: next, denoiser: ConsistencyParameterisation.edmDenoiser(target, condition))
    }.detached()
    let online = generator.consistency(xt, sigmas: sigmas, condition: condition)
    let weights = sigmas.map { weighting.weight($0, sigmaData: generator.parameterisation.sigmaData) }
    let loss = Self.distanceLoss(online, targetValue, weights: weights, distance: distance, huberC: huberC, lpips: lpips)
    logDiagnostics(context, online: online.detached(), target: targetValue, weights: weights)
    return loss
  }

  /// ‖∂loss/∂f‖ of ``distanceLoss(_:_:weights:distance:huberC:)`` for `difference` = f − target:
  /// per sample i of D values, λᵢ/n times 2δ/D (l2), sign(δ)/D (l1) or δ/√(‖δ‖² + c²) (pseudo-Huber).
  public static func outputGradientNorm(_ difference: Tensor, weights: [Double], distance: Distance, huberC: Double)
    -> Double
  {
    let n = difference.shape[0]
    let values = difference.count / n
    let scalars = difference.scalars
    var squared = 0.0
    for i in 0..<n {
      let row = scalars[(i * values)..<((i + 1) * values)].map(Double.init)
      let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
      let scale = weights[i] / Double(n)
      switch distance {
      case .l2: squared += pow(scale * 2 / Double(values) * norm, 2)
      case .l1: squared += pow(scale / Double(values), 2) * Double(row.filter { $0 != 0 }.count)
      case .pseudoHuber: squared += pow(scale * norm / (norm * norm + huberC * huberC).squareRoot(), 2)
      case .lpips: return .nan
      }
    }
    return squared.squareRoot()
  }

  func logDiagnostics(_ context: StepContext, online: Tensor, target targetValue: Tensor, weights: [Double]) {
    let n = online.shape[0]
    let difference = online - targetValue
    let norms = difference.square().sum(axes: Array(1..<online.rank)).sqrt().scalars.map(Double.init)
    context.log("cd/distance", norms.reduce(0, +) / Double(n))
    if distance != .lpips {
      context.log(
        "cd/output-gradient-norm",
        Self.outputGradientNorm(difference, weights: weights, distance: distance, huberC: huberC))
    }
    var lag = 0.0
    for (live, averaged) in zip(generator.module.namedParameters(), target.weightsModule!.namedParameters()) {
      lag += Double((live.parameter.value.detached() - averaged.parameter.value.detached()).square().sum().item)
    }
    context.log("cd/target-lag", lag.squareRoot())
  }

  // MARK: Checkpointable

  public func checkpointState() -> [String: Tensor] {
    var state: [String: Tensor] = ["called": Tensor(shape: [1], scalars: [lastStep == nil ? 0 : 1])]
    for (name, value) in target.weightsModule!.stateDict() { state["target.\(name)"] = value }
    return state
  }

  public func restore(_ state: [String: Tensor]) throws {
    guard let called = state["called"], called.shape == [1] else {
      throw DistillError.stateDictMismatch(problems: ["'called': missing from the consistency-distillation state"])
    }
    var weights: [String: Tensor] = [:]
    for (key, value) in state where key.hasPrefix("target.") { weights[String(key.dropFirst("target.".count))] = value }
    try target.weightsModule!.load(weights, strict: true)
    // The checkpoint follows a generator update, so the next call moves θ⁻ once more, as an
    // uninterrupted run's next call would.
    lastStep = called.scalars[0] != 0 ? -1 : nil
  }
}

public enum ConsistencyDistillation: LossComponent {
  public static let id = "consistency-distillation"
  public static let summary =
    "consistency distillation (Song et al. 2023): f_θ at σ_n against the EMA target at the teacher's ODE step to σ_{n+1}"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("gridPoints", .integer(2...100_000), default: .number(18), "N: points of the Karras grid"),
    ParameterSpec("rho", .number(1...100), default: .number(7), "ρ of the Karras grid"),
    .choice("solver", ConsistencyDistillationTerm.Solver.self, default: .heun,
      "the teacher's ODE step between adjacent grid points"),
    ParameterSpec(
      "targetDecay", .number(0...1), default: .number(0.95),
      "μ of the target network's EMA, θ⁻ ← μθ⁻ + (1 − μ)θ after every generator update (0: θ⁻ = θ)"),
    .choice("distance", ConsistencyDistillationTerm.Distance.self, default: .l2,
      "d: mean squared (l2) or absolute (l1) difference, pseudo-Huber √(‖a−b‖² + c²) − c per sample, or LPIPS (lpips, with the lpips object)"),
    .optional("huberC", .number(0...1e6), "c of the pseudo-Huber distance (default: 0.00054·√(values per sample))"),
    .choice("weighting", ConsistencyDistillationTerm.Weighting.self, default: .uniform, "λ(σ) with SNR = 1/σ²: 1, SNR, SNR+1, SNR+1/σ_d² (karras) or max(SNR, 1)"),
    LPIPSOptions.spec("the LPIPS network of the lpips distance"),
    teacherGuidanceParameter,
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    let teacher = try context.guidedTeacher(for: entry)
    let generator = try context.requireGenerator(
      as: (any ConsistencyModelGenerator).self, "\"consistency\" (the student must be a consistency model)", for: entry)
    let values = Double(generator.sampleShape.reduce(1, *))
    let lpips = try LPIPSOptions.load(entry, context, distance: entry.string("distance"), imageShape: generator.sampleShape)
    let term = try ConsistencyDistillationTerm(
      generator: generator, teacher: teacher, gridPoints: entry.int("gridPoints"), rho: entry.double("rho"),
      solver: entry.choice("solver"), distance: entry.choice("distance"), lpips: lpips,
      huberC: entry.optionalDouble("huberC") ?? 0.00054 * values.squareRoot(),
      weighting: entry.choice("weighting"), decay: entry.double("targetDecay"))
    context.addCheckpointState(prefix: entry.path, term)
    return term
  }
}
