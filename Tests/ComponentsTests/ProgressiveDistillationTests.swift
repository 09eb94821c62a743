import DistillCore
import DistillDiffusion
import Foundation
import Testing

@testable import BuiltInComponents
@testable import DenoiserGenerator
@testable import DistillPipeline
@testable import EnergyDistance
@testable import ProgressiveDistillation

/// A small progressive-distillation manifest: 8 → 2 steps in two rounds of 15 steps.
func progressiveManifestJSON(steps: Int = 30, output: String, data: Bool = true) -> JSONValue {
  let dataLine = data ? #""data": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.3},"# : ""
  let text = """
    {
      "name": "pd-test",
      "seed": 3,
      "teacher": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.3},
      \(dataLine)
      "generator": {"type": "denoiser", "init": "new", "prediction": "sample", "steps": 2,
                    "network": {"type": "mlp", "inputSize": 2, "width": 16, "depth": 2, "outputSize": 2}},
      "losses": [{"type": "progressive-distillation", "startSteps": 8, "roundSteps": [15]}],
      "optimizer": {"type": "adam", "lr": 0.001},
      "training": {"steps": \(steps), "batchSize": 32, "checkpointEvery": 10, "keepCheckpoints": 5, "logEvery": 5},
      "evaluation": {"every": 10, "samples": 64, "gridSize": 16, "metrics": ["energy-distance"]},
      "output": \(JSONValue.quoted(output))
    }
    """
  return try! JSONValue.parse(Data(text.utf8), source: "pd-test")
}

/// The problems `json` (edited by `overrides`) gets from validation and assembly.
func buildProblems(_ json: JSONValue, _ overrides: [String]) -> [String] {
  var json = json
  do {
    for text in overrides { try ManifestOverride(parsing: text).apply(to: &json) }
    let registry = ComponentRegistry.standard()
    let manifest = try Manifest.decode(
      json, source: "m.json", baseDirectory: NSTemporaryDirectory(), fallbackName: "m", registry: registry)
    _ = try AssembledPipeline.assemble(manifest, registry: registry)
    return []
  } catch let error as ManifestError {
    return error.problems.map(\.description)
  } catch {
    return ["unexpected \(error)"]
  }
}

/// Trains `json` as ``train(_:registry:mode:overrides:source:)`` does, but stops right after
/// the checkpoint of step `stop` is written, as an interrupted run would; the manifest is
/// unchanged, so a term whose validation depends on `training.steps` builds the same.
func trainInterrupted(_ json: JSONValue, stoppingAt stop: Int) throws {
  let registry = ComponentRegistry.standard()
  let manifest = try Manifest.decode(
    json, source: "manifest.json", baseDirectory: NSTemporaryDirectory(), fallbackName: "test", registry: registry)
  let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
  let folder = RunFolder(path: manifest.output)
  _ = try folder.prepare(for: manifest.resolvedJSON, mode: .fresh)
  let trainer = Trainer(pipeline: pipeline, folder: folder, progress: ProgressReporter(style: .silent))
  trainer.checkpoints.writer = { store, step, tensors, keep in
    try store.write(step: step, tensors: tensors, keep: keep)
    if step == stop { throw DistillError.io(path: store.path(step: step), reason: "stopped by the test") }
  }
  do {
    try trainer.run(resumedFrom: nil, interruptible: false)
    Issue.record("the run was not stopped at step \(stop)")
  } catch RunFailure.writeFailed(_, let step, _) {
    #expect(step == stop)
  }
}

/// The energy distance of the mixture teacher's own `steps`-step DDIM sampler (trailing, no
/// clipping) on the evaluation noise of `pipeline`.
func teacherDDIMEnergyDistance(_ pipeline: AssembledPipeline, steps: Int) throws -> Double {
  let mixture = try #require(pipeline.teacher as? GaussianMixtureDenoiser)
  let evaluation = pipeline.manifest.evaluation
  var rng = RandomGenerator(seed: evaluation.seed)
  let noise = Tensor.normal([evaluation.samples, mixture.dimension], using: &rng)
  let sampler = DDIMSampler(
    schedule: mixture.schedule, prediction: mixture.prediction, clipSample: false, spacing: .trailing)
  let samples = try withoutGradients { try sampler.sample(model: mixture.model(), initialNoise: noise, steps: steps) }
  let trainer = Trainer(
    pipeline: pipeline, folder: RunFolder(path: "/nonexistent"), progress: ProgressReporter(style: .silent))
  let reference = try #require(try trainer.recorder.evaluationContext.referenceSamples(evaluation.samples))
  return EnergyDistanceMetric.energyDistance(samples, reference)
}

@Suite struct ProgressiveDistillationTests {
  typealias Term = ProgressiveDistillationTerm

  /// x̃ is defined by one DDIM step: α_s·x̃ + σ_s·(z_t − α_t·x̃)/σ_t = z_s.
  @Test func theXTargetTakesOneStudentStepToTheTeachersPoint() {
    let zt = Tensor(shape: [2, 2], scalars: [0.3, -1.2, 2.0, 0.5])
    let zs = Tensor(shape: [2, 2], scalars: [0.7, -0.4, 1.1, 0.9])
    let t = [(alpha: 0.3, sigma: (1 - 0.09).squareRoot()), (alpha: 0.8, sigma: 0.6)]
    let s = [(alpha: 0.6, sigma: 0.8), (alpha: 1.0, sigma: 0.0)]
    let x = Term.xTarget(zt: zt, zs: zs, t: t, s: s).scalars
    for i in 0..<2 {
      for j in 0..<2 {
        let k = i * 2 + j
        let step =
          s[i].alpha * Double(x[k]) + s[i].sigma * (Double(zt.scalars[k]) - t[i].alpha * Double(x[k])) / t[i].sigma
        #expect(abs(step - Double(zs.scalars[k])) < 1e-5, "sample \(i), value \(j): \(step) vs \(zs.scalars[k])")
      }
    }
    // At σ_s = 0 (the last step, to x₀) the target is the teacher's end point itself.
    #expect(Array(x[2..<4]) == Array(zs.scalars[2..<4]))
  }

  /// The target of two DDIM steps of an exact one-Gaussian teacher, against the same steps
  /// written out in Double with its posterior mean μ + a·s₀²/(a²s₀² + σ²)·(z − a·μ).
  @Test func theTeacherTargetMatchesAHandComputation() throws {
    let (mu, s0) = ([0.5, -1.0], 0.4)
    let teacher = try GaussianMixtureDenoiser(means: [mu.map(Float.init)], std: Float(s0))
    let schedule = teacher.schedule
    let zt = Tensor(shape: [2, 2], scalars: [0.9, -0.3, -1.4, 0.6])
    let (t, m, s) = ([700, 124], [450, 61], [199, -1])
    let target = Term.teacherTarget(zt, t: t, m: m, s: s, teacher: teacher).scalars
    func scales(_ t: Int) -> (Double, Double) { t < 0 ? (1, 0) : (schedule.signalScale(t), schedule.noiseScale(t)) }
    func x0(_ z: Double, _ t: Int, _ j: Int) -> Double {
      let (a, sigma) = scales(t)
      return mu[j] + a * s0 * s0 / (a * a * s0 * s0 + sigma * sigma) * (z - a * mu[j])
    }
    func ddim(_ z: Double, _ x: Double, _ from: Int, _ to: Int) -> Double {
      let ((a, sigma), (a2, sigma2)) = (scales(from), scales(to))
      return a2 * x + sigma2 * (z - a * x) / sigma
    }
    for i in 0..<2 {
      for j in 0..<2 {
        let z = Double(zt.scalars[i * 2 + j])
        let zm = ddim(z, x0(z, t[i], j), t[i], m[i])
        let zs = ddim(zm, x0(zm, m[i], j), m[i], s[i])
        let ((at, st), (as_, ss)) = (scales(t[i]), scales(s[i]))
        let expected = (zs - ss / st * z) / (as_ - ss / st * at)
        #expect(abs(Double(target[i * 2 + j]) - expected) < 1e-4, "\(target[i * 2 + j]) vs \(expected)")
      }
    }
  }

  /// loss = mean w·(x̂ − x̃)² with w = max(SNR, 1); ∂loss/∂x̂ = 2w(x̂ − x̃)/(values).
  @Test func theLossAndItsGradientMatchAHandComputation() {
    let schedule = NoiseSchedule.ddpm()
    let timesteps = [100, 900]
    let snr = timesteps.map(schedule.snr)
    #expect(snr[0] > 1 && snr[1] < 1)
    let weights = snr.map { Term.Weighting.truncatedSNR.weight(snr: $0) }
    #expect(weights == [snr[0], 1])
    #expect(Term.Weighting.snrPlusOne.weight(snr: 2) == 3 && Term.Weighting.constant.weight(snr: 5) == 1)
    let prediction = Tensor(shape: [2, 2], scalars: [0.5, -0.25, 1.0, 2.0])
    let target = Tensor(shape: [2, 2], scalars: [0.25, 0.25, -1.0, 1.5])
    let (value, gradients) = valueWithGradients(at: [prediction]) { inputs in
      Term.weightedLoss(inputs[0], target, weights: weights)
    }
    let d = zip(prediction.scalars, target.scalars).map { Double($0) - Double($1) }
    let w = [weights[0], weights[0], weights[1], weights[1]]
    let expected = zip(w, d).map { $0 * $1 * $1 }.reduce(0, +) / 4
    #expect(abs(Double(value.item) - expected) < 1e-5 * max(1, expected))
    for (g, (wi, di)) in zip(gradients[0].scalars, zip(w, d)) {
      #expect(abs(Double(g) - 2 * wi * di / 4) < 1e-4 * max(1, abs(2 * wi * di / 4)))
    }
    // The logged pd/output-gradient-norm is the norm of that gradient.
    let norm = gradients[0].scalars.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
    let logged = Term.outputGradientNorm(prediction - target, weights: weights)
    #expect(abs(logged - norm) < 1e-4 * norm, "\(logged) vs \(norm)")
  }

  /// The example's rounds: 32 → 1 step in five rounds (4000 training steps for the first, whose
  /// student starts from a new network, then 1000 each), each grid every other point of the
  /// one before, the generator sampling with the round's steps.
  @Test func roundsHalveTheStepsOnNestedGrids() throws {
    let manifest = try Manifest.load(
      path: PipelineRun.templatePath("progressive-distillation.json"), registry: PipelineRun.registry)
    let pipeline = try AssembledPipeline.assemble(manifest, registry: PipelineRun.registry)
    let term = try #require(pipeline.losses[0].term as? Term)
    let generator = try #require(pipeline.generator as? DenoiserSampleGenerator)
    #expect(term.rounds == 5 && term.roundStarts == [0, 4000, 5000, 6000, 7000])
    #expect(generator.timesteps == [999], "the built generator samples the final round's grid")
    #expect((0..<5).map(term.studentSteps) == [16, 8, 4, 2, 1])
    #expect([0, 3999, 4000, 5999, 6000, 7000, 9999].map(term.round(atStep:)) == [0, 0, 1, 2, 3, 4, 4])
    for n in [32, 16, 8, 4, 2] {
      let fine = (0...n).map { Term.gridTimestep($0, steps: n, trainSteps: 1000) }
      let coarse = (0...(n / 2)).map { Term.gridTimestep($0, steps: n / 2, trainSteps: 1000) }
      #expect(coarse == stride(from: 0, through: n, by: 2).map { fine[$0] })
      #expect(Array(fine.dropLast()) == trailingTimesteps(steps: n, trainSteps: 1000))
      #expect(fine.last == -1)
    }
    try term.enterRound(atStep: 5500)
    #expect(generator.timesteps == [999, 749, 499, 249] && term.teacherRound == 2)
  }

  /// The example manifest's one-step student ends far closer to the teacher's distribution
  /// than the untrained generator, and covers every mode of the ring.
  @Test func studentBeatsTheUntrainedGenerator() throws {
    let before = try PipelineRun.untrainedEnergyDistance("progressive-distillation.json")
    let (pipeline, final, samples) = try PipelineRun.train("progressive-distillation.json")
    let after = try #require(final["eval/energy-distance"])
    let mixture = try #require(pipeline.teacher as? GaussianMixtureDenoiser)
    #expect(after < 0.05 * before, "energy distance \(after) after training, \(before) untrained")
    #expect(coveredModes(samples, mixture) == mixture.means.count)
    // Sharpness (docs/methods.md's table, 4096 samples: 0.89 within 3 std): at least 0.85 on the
    // manifest's 1024 evaluation samples (3 to 4 standard errors below), every mode at least
    // half its weight.
    let within = try #require(final["eval/within-3std"])
    #expect(within >= 0.85, "within 3 std: \(within)")
    let leastMode = try #require(final["eval/min-mode-mass"])
    #expect(leastMode >= 0.5, "least mode's mass over its weight: \(leastMode)")
    // The teacher's own DDIM at each round's step count: the student takes one step where
    // the teacher needs several for the same distance.
    let teacher = try [32, 16, 8, 4, 2, 1].map { ($0, try teacherDDIMEnergyDistance(pipeline, steps: $0)) }
    let teacherOne = teacher.last!.1
    let teacherFour = teacher[3].1
    #expect(after < 0.1 * teacherOne, "the one-step student \(after), the teacher's own one DDIM step \(teacherOne)")
    #expect(after < teacherFour, "the one-step student \(after), the teacher's four DDIM steps \(teacherFour)")
    print(
      "progressive-distillation: energy distance untrained \(before), trained (1 step) \(after); "
        + "within 3 std \(within), least mode \(leastMode); teacher DDIM "
        + teacher.map { "\($0.0): \($0.1)" }.joined(separator: ", "))
  }

  /// Stopping inside the first round (the snapshot is taken after the resume) and inside the
  /// second (the snapshot comes from the checkpoint) both end bit for bit where an
  /// uninterrupted run ends.
  @Test func aResumedRunEndsWithTheSameWeightsBitForBit() throws {
    let base = temporaryFolder()
    try train(progressiveManifestJSON(steps: 30, output: base + "/straight"))
    for stop in [10, 20] {
      try trainInterrupted(progressiveManifestJSON(steps: 30, output: base + "/resumed-\(stop)"), stoppingAt: stop)
      try train(progressiveManifestJSON(steps: 30, output: base + "/resumed-\(stop)"), mode: .resume)
      for file in ["generator.safetensors", "checkpoints/step-00000030/state.safetensors"] {
        let straight = FileManager.default.contents(atPath: base + "/straight/" + file)
        let resumed = FileManager.default.contents(atPath: base + "/resumed-\(stop)/" + file)
        #expect(straight != nil && straight == resumed, "\(file) after stopping at \(stop)")
      }
    }
    let state = try SafetensorsFile.read(contentsOf: base + "/straight/checkpoints/step-00000030/state.safetensors")
    #expect(
      state.keys.contains("state.losses[0].round") && state.keys.contains { $0.hasPrefix("state.losses[0].teacher.") })
    let records = try MetricsLog.read(path: base + "/straight/metrics.jsonl")
    #expect(records.first { $0.step == 10 }?.values["pd/student-steps"] == 4)
    #expect(records.first { $0.step == 20 }?.values["pd/student-steps"] == 2)
    #expect(records.first { $0.step == 20 }?.values["pd/round"] == 2)
  }

  @Test func badValuesNameTheirJSONPath() {
    let json = progressiveManifestJSON(output: "/tmp/unused")
    let startSteps = buildProblems(json, ["losses[0].startSteps=12"])
    #expect(
      startSteps.count == 1
        && startSteps[0].hasPrefix("losses[0].startSteps: expected the generator's 2 steps times a power of two"),
      "\(startSteps)")
    #expect(buildProblems(json, ["losses[0].startSteps=2"]).first?.hasPrefix("losses[0].startSteps:") == true)
    let roundSteps = buildProblems(json, ["losses[0].roundSteps=[30]"])
    #expect(
      roundSteps.first?.hasPrefix("losses[0].roundSteps: expected lengths that let all 2 rounds start") == true,
      "\(roundSteps)")
    let lengths = buildProblems(json, ["losses[0].roundSteps=[10, 10, 10]"])
    #expect(lengths.first?.hasPrefix("losses[0].roundSteps: expected 1 to 2 positive integers") == true, "\(lengths)")
    #expect(buildProblems(json, ["losses[0].roundSteps=[2.5]"]).first?.hasPrefix("losses[0].roundSteps:") == true)
    let generator = buildProblems(json, ["generator={\"type\": \"mlp\"}"])
    #expect(generator.first?.contains("generator.type: expected \"denoiser\"") == true, "\(generator)")
    let noData = buildProblems(progressiveManifestJSON(output: "/tmp/unused", data: false), [])
    #expect(noData.first?.hasPrefix("losses[0]: expected a manifest with a data source") == true, "\(noData)")
    let explicit = buildProblems(json, ["generator.timesteps=[999, 500]"])
    #expect(explicit.first?.contains("generator.timesteps: expected none") == true, "\(explicit)")
    #expect(buildProblems(json, ["losses[0].weighting=\"snr-trunc\""]).first?.hasPrefix("losses[0].weighting:") == true)
  }
}
