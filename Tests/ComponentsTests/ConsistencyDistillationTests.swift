import DistillCore
import DistillDiffusion
import Foundation
import Testing

@testable import BuiltInComponents
@testable import ConsistencyDistillation
@testable import ConsistencyGenerator
@testable import DistillPipeline
@testable import EnergyDistance

/// A small consistency-distillation manifest (two modes, a tiny MLP).
func consistencyManifestJSON(steps: Int = 30, output: String, data: Bool = true) -> JSONValue {
  let dataLine = data ? #""data": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.3},"# : ""
  let text = """
    {
      "name": "cd-test",
      "seed": 5,
      "teacher": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.3},
      \(dataLine)
      "generator": {"type": "consistency", "init": "new", "prediction": "sample",
                    "network": {"type": "mlp", "inputSize": 2, "width": 16, "depth": 2, "outputSize": 2}},
      "losses": [{"type": "consistency-distillation", "gridPoints": 10, "targetDecay": 0.9}],
      "optimizer": {"type": "adam", "lr": 0.001},
      "training": {"steps": \(steps), "batchSize": 32, "ema": 0.9, "checkpointEvery": 10, "keepCheckpoints": 5, "logEvery": 5},
      "evaluation": {"every": 10, "samples": 64, "gridSize": 16, "metrics": ["energy-distance"]},
      "output": \(JSONValue.quoted(output))
    }
    """
  return try! JSONValue.parse(Data(text.utf8), source: "cd-test")
}

@Suite struct ConsistencyDistillationTests {
  typealias Term = ConsistencyDistillationTerm

  /// f = c_skip·x + c_out·F with F = (D − c_skip^EDM·x)/c_out^EDM, the identity at σ_min.
  @Test func theConsistencyFunctionFollowsTheSkipAndOutScalings() throws {
    let p = ConsistencyParameterisation(sigmaMin: 0.01, sigmaMax: 157, sigmaData: 0.5)
    let x = Tensor(shape: [3, 2], scalars: [0.4, -1.0, 2.0, 0.3, -0.7, 1.5])
    let d = Tensor(shape: [3, 2], scalars: [0.1, -0.2, 1.9, 0.4, -0.5, 0.25])
    let sigmas = [0.01, 0.7, 80.0]
    let f = try p(x, sigmas: sigmas, denoiser: { _, _ in d }).scalars
    for (i, sigma) in sigmas.enumerated() {
      let (sd, smin) = (0.5, 0.01)
      let cSkip = sd * sd / ((sigma - smin) * (sigma - smin) + sd * sd)
      let cOut = sd * (sigma - smin) / (sigma * sigma + sd * sd).squareRoot()
      let edmSkip = sd * sd / (sigma * sigma + sd * sd)
      let edmOut = sigma * sd / (sigma * sigma + sd * sd).squareRoot()
      for j in 0..<2 {
        let (xv, dv) = (Double(x.scalars[i * 2 + j]), Double(d.scalars[i * 2 + j]))
        let expected = cSkip * xv + cOut * (dv - edmSkip * xv) / edmOut
        #expect(abs(Double(f[i * 2 + j]) - expected) < 1e-5, "σ \(sigma): \(f[i * 2 + j]) vs \(expected)")
      }
    }
    #expect(Array(f[0..<2]) == Array(x.scalars[0..<2]), "f(x, σ_min) = x")
    let (a, b) = p.coefficients(157)
    #expect(abs(a) < 1e-6 && abs(b - 1) < 1e-4, "at σ_max f is the denoiser's x̂₀")
  }

  /// For one Gaussian N(μ, s²) the probability-flow ODE is solved exactly by
  /// x(σ') = μ + (x − μ)·√(s²+σ'²)/√(s²+σ²). The teacher (the exact mixture driven through the
  /// VP-to-VE wrapper) steps close to it, and halving the step shrinks Heun's error about 8×
  /// (third-order local error) and Euler's about 4× (second order).
  @Test func theTeacherStepFollowsTheODE() throws {
    let (mu, s) = (0.5, 0.3)
    let mixture = try GaussianMixtureDenoiser(means: [[Float(mu), Float(mu)]], std: Float(s))
    let teacher = ConsistencyParameterisation.edmDenoiser(mixture)
    let x = Tensor(shape: [2, 2], scalars: [1.3, -0.6, 4.0, 2.0])
    let from = [1.2, 2.0]
    func error(_ solver: Term.Solver, step h: Double) throws -> Double {
      let to = from.map { $0 - h }
      let stepped = try Term.teacherStep(x, from: from, to: to, solver: solver, teacher: teacher).scalars
      var worst = 0.0
      for k in 0..<4 {
        let (i, value) = (k / 2, Double(x.scalars[k]))
        let exact = mu + (value - mu) * ((s * s + to[i] * to[i]) / (s * s + from[i] * from[i])).squareRoot()
        worst = max(worst, abs(Double(stepped[k]) - exact))
      }
      return worst
    }
    let (heun, heunHalf) = (try error(.heun, step: 0.2), try error(.heun, step: 0.1))
    let (euler, eulerHalf) = (try error(.euler, step: 0.2), try error(.euler, step: 0.1))
    #expect(heun < euler / 2, "Heun \(heun), Euler \(euler)")
    #expect(
      heun / heunHalf > 6 && (3...5.5).contains(euler / eulerHalf),
      "Heun \(heun) → \(heunHalf), Euler \(euler) → \(eulerHalf)")
  }

  /// loss = mean λᵢ·dᵢ; pseudo-Huber dᵢ = √(‖δᵢ‖² + c²) − c with ∂/∂f = λᵢ·δᵢ/(n·√(‖δᵢ‖² + c²)),
  /// l2 dᵢ = mean δ² with ∂/∂f = 2λᵢ·δᵢ/(n·D).
  @Test func theDistanceAndItsGradientMatchAHandComputation() {
    let online = Tensor(shape: [2, 2], scalars: [0.5, -0.25, 1.0, 2.0])
    let target = Tensor(shape: [2, 2], scalars: [0.25, 0.25, 1.0, 1.9])
    let weights = [2.0, 0.5]
    let c = 0.00054 * 2.0.squareRoot()
    let delta: [Double] = zip(online.scalars, target.scalars).map { Double($0) - Double($1) }
    var norms: [Double] = []
    for i in 0..<2 {
      let (a, b) = (delta[2 * i], delta[2 * i + 1])
      norms.append((a * a + b * b).squareRoot())
    }
    var huberValue = 0.0
    var l2Value = 0.0
    for i in 0..<2 {
      let norm: Double = norms[i]
      huberValue += weights[i] * ((norm * norm + c * c).squareRoot() - c) / 2
      l2Value += weights[i] * norm * norm / 2 / 2
    }
    var huberGradient: [Double] = []
    var l2Gradient: [Double] = []
    for k in delta.indices {
      let (w, norm): (Double, Double) = (weights[k / 2], norms[k / 2])
      huberGradient.append(w * delta[k] / (2 * (norm * norm + c * c).squareRoot()))
      l2Gradient.append(2 * w * delta[k] / 4)
    }
    let cases: [(Term.Distance, Double, [Double])] = [
      (.pseudoHuber, huberValue, huberGradient), (.l2, l2Value, l2Gradient),
    ]
    for (distance, expected, expectedGradient) in cases {
      let (value, gradients) = valueWithGradients(at: [online]) { inputs in
        Term.distanceLoss(inputs[0], target, weights: weights, distance: distance, huberC: c)
      }
      #expect(abs(Double(value.item) - expected) < 1e-6, "\(distance): \(value.item) vs \(expected)")
      for (g, e) in zip(gradients[0].scalars, expectedGradient) {
        #expect(abs(Double(g) - e) < 1e-4, "\(distance): gradient \(g) vs \(e)")
      }
    }
    // The logged cd/output-gradient-norm is the norm of the gradient, for every distance with
    // a closed form (LPIPS has none and is not logged; LPIPSLossTests checks its gradient).
    for distance in Term.Distance.allCases where distance != .lpips {
      let (_, gradients) = valueWithGradients(at: [online]) { inputs in
        Term.distanceLoss(inputs[0], target, weights: weights, distance: distance, huberC: c)
      }
      let norm = gradients[0].scalars.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
      let logged = Term.outputGradientNorm(online - target, weights: weights, distance: distance, huberC: c)
      #expect(abs(logged - norm) < 1e-4 * norm, "\(distance): \(logged) vs \(norm)")
    }
    #expect(Term.Weighting.truncatedSNR.weight(2, sigmaData: 0.5) == 1)
    #expect(Term.Weighting.karras.weight(2, sigmaData: 0.5) == 0.25 + 4)
  }

  /// θ⁻ starts as θ and moves once per generator update: θ⁻ ← μθ⁻ + (1 − μ)θ.
  @Test func theTargetIsAnEMAOfTheStudentUpdatedOncePerStep() throws {
    let json = consistencyManifestJSON(output: "/tmp/unused")
    let registry = ComponentRegistry.standard()
    let manifest = try Manifest.decode(
      json, source: "m.json", baseDirectory: NSTemporaryDirectory(), fallbackName: "m", registry: registry)
    let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
    let term = try #require(pipeline.losses[0].term as? Term)
    func context(_ step: Int) -> StepContext {
      StepContext(
        step: step, phase: .generator, rows: 0..<8, globalBatchSize: 8, rank: 0, generator: pipeline.generator,
        teacher: pipeline.teacher, schedule: pipeline.context.schedule, scores: [:], data: pipeline.data,
        stream: RandomGenerator(seed: 1))
    }
    func weights(_ module: Module) -> [Float] { module.namedParameters().flatMap { $0.parameter.value.scalars } }
    let student = pipeline.generator.module
    let initial = weights(student)
    _ = try term.loss(context(0))
    #expect(weights(term.target.weightsModule!) == initial)
    for entry in student.namedParameters() { entry.parameter.assign(entry.parameter.value + 1) }
    let moved = weights(student)
    _ = try term.loss(context(1))
    let expected = zip(initial, moved).map { Float(0.9) * $0 + Float(0.1) * $1 }
    let target = weights(term.target.weightsModule!)
    #expect(zip(target, expected).allSatisfy { abs($0 - $1) < 1e-6 })
    _ = try term.loss(context(1))
    #expect(weights(term.target.weightsModule!) == target, "a second call in the same step does not move θ⁻")
  }

  /// The example manifest's one-step consistency model ends far closer to the teacher's
  /// distribution than the untrained generator, and covers every mode of the ring.
  @Test func studentBeatsTheUntrainedGenerator() throws {
    let before = try PipelineRun.untrainedEnergyDistance("consistency-distillation.json")
    let (pipeline, final, samples) = try PipelineRun.train("consistency-distillation.json")
    let after = try #require(final["eval/energy-distance"])
    let mixture = try #require(pipeline.teacher as? GaussianMixtureDenoiser)
    #expect(after < 0.05 * before, "energy distance \(after) after training, \(before) untrained")
    #expect(coveredModes(samples, mixture) == mixture.means.count)
    // Sharpness (docs/methods.md's table, 4096 samples: 0.92 within 3 std): at least 0.88 on the
    // manifest's 1024 evaluation samples (3 to 4 standard errors below), every mode at least
    // half its weight.
    let within = try #require(final["eval/within-3std"])
    #expect(within >= 0.88, "within 3 std: \(within)")
    let leastMode = try #require(final["eval/min-mode-mass"])
    #expect(leastMode >= 0.5, "least mode's mass over its weight: \(leastMode)")
    let teacher = try teacherDDIMEnergyDistance(pipeline, steps: 50)
    #expect(after < 2 * teacher, "the one-step student \(after), the teacher's 50 DDIM steps \(teacher)")
    print(
      "consistency-distillation: energy distance untrained \(before), trained (1 step) \(after); "
        + "within 3 std \(within), least mode \(leastMode); teacher DDIM-50 \(teacher)"
    )
  }

  /// The target network and its update flag travel in the checkpoint: a run stopped at step
  /// 10 and resumed ends bit for bit where an uninterrupted one ends.
  @Test func aResumedRunEndsWithTheSameWeightsBitForBit() throws {
    let base = temporaryFolder()
    try train(consistencyManifestJSON(steps: 30, output: base + "/straight"))
    try train(consistencyManifestJSON(steps: 10, output: base + "/resumed"))
    try train(consistencyManifestJSON(steps: 30, output: base + "/resumed"), mode: .resume)
    for file in ["generator.safetensors", "checkpoints/step-00000030/state.safetensors"] {
      let straight = FileManager.default.contents(atPath: base + "/straight/" + file)
      let resumed = FileManager.default.contents(atPath: base + "/resumed/" + file)
      #expect(straight != nil && straight == resumed, "\(file)")
    }
    let state = try SafetensorsFile.read(contentsOf: base + "/straight/checkpoints/step-00000030/state.safetensors")
    #expect(
      state.keys.contains("state.losses[0].called") && state.keys.contains { $0.hasPrefix("state.losses[0].target.") })
    let records = try MetricsLog.read(path: base + "/straight/metrics.jsonl")
    let line = try #require(records.first { $0.step == 30 }?.values)
    for key in ["cd/distance", "cd/output-gradient-norm", "cd/target-lag", "loss/consistency-distillation"] {
      #expect(line[key].map(\.isFinite) == true, "\(key)")
    }
  }

  /// Two steps: σ_max, then the middle of a three-point Karras ladder, each with its own noise.
  @Test func multistepSamplingTakesNoiseForEachStep() throws {
    var json = consistencyManifestJSON(output: "/tmp/unused")
    try ManifestOverride(parsing: "generator.steps=2").apply(to: &json)
    let registry = ComponentRegistry.standard()
    let manifest = try Manifest.decode(
      json, source: "m.json", baseDirectory: NSTemporaryDirectory(), fallbackName: "m", registry: registry)
    let generator = try #require(
      try AssembledPipeline.assemble(manifest, registry: registry).generator as? ConsistencySampleGenerator)
    #expect(generator.noiseShape == [4] && generator.sampleShape == [2])
    let p = generator.parameterisation
    let ladder = NoiseSchedule.karrasSigmas(count: 3, sigmaMin: p.sigmaMin, sigmaMax: p.sigmaMax)
    #expect(generator.samplingSigmas == Array(ladder.prefix(2)))
    var rng = RandomGenerator(seed: 2)
    let noise = Tensor.normal([3, 4], using: &rng)
    let samples = withoutGradients { generator(noise) }
    let first = noise.reshaped([3, 2, 2]).sliced(axis: 1, 0..<1).reshaped([3, 2])
    let second = noise.reshaped([3, 2, 2]).sliced(axis: 1, 1..<2).reshaped([3, 2])
    let expected = withoutGradients {
      let x = generator.consistency(first * Float(ladder[0]), sigmas: [ladder[0], ladder[0], ladder[0]], condition: .none)
      let scale = (ladder[1] * ladder[1] - p.sigmaMin * p.sigmaMin).squareRoot()
      return generator.consistency(x + second * Float(scale), sigmas: [ladder[1], ladder[1], ladder[1]], condition: .none)
    }
    #expect(samples.scalars == expected.scalars)
  }

  @Test func badValuesNameTheirJSONPath() {
    let json = consistencyManifestJSON(output: "/tmp/unused")
    let generator = buildProblems(json, ["generator={\"type\": \"mlp\"}"])
    #expect(generator.first?.contains("generator.type: expected \"consistency\"") == true, "\(generator)")
    let sigmaMin = buildProblems(json, ["generator.sigmaMin=0.001"])
    #expect(sigmaMin.first?.hasPrefix("generator.sigmaMin: expected a σ in [") == true, "\(sigmaMin)")
    let sigmaMax = buildProblems(json, ["generator.sigmaMax=500"])
    #expect(sigmaMax.first?.hasPrefix("generator.sigmaMax: expected a σ above sigmaMin") == true, "\(sigmaMax)")
    let noData = buildProblems(consistencyManifestJSON(output: "/tmp/unused", data: false), [])
    #expect(noData.first?.hasPrefix("losses[0]: expected a manifest with a data source") == true, "\(noData)")
    #expect(buildProblems(json, ["losses[0].gridPoints=1"]).first?.hasPrefix("losses[0].gridPoints:") == true)
    #expect(buildProblems(json, ["losses[0].distance=\"huber\""]).first?.hasPrefix("losses[0].distance:") == true)
    #expect(buildProblems(json, ["losses[0].targetDecay=1.5"]).first?.hasPrefix("losses[0].targetDecay:") == true)
  }
}
