import DistillCore
import DistillDiffusion
import DistillTestSupport
import Foundation
import Testing

@testable import DenoiserGenerator
@testable import DistillPipeline

/// Students of an ε-prediction teacher (linear DDPM betas, α = √ᾱ_999 ≈ 0.0064), whose x̂₀ at
/// t = 999 divides ε̂'s errors by α (docs/methods.md, "Students of an ε-prediction teacher"):
/// of a teacher of vectors, a `denoiser` generator and a `trained` score copied from it
/// predict v by default, the same weights reparameterised; of an image teacher they keep ε
/// and the generator clamps its x̂₀ to [−1, 1].
@Suite(.serialized) struct EpsilonTeacherStudentTests {
  static let ring =
    #"{"type": "gaussian-mixture", "std": 0.2, "means": [[2, 0], [1.414, 1.414], [0, 2], [-1.414, 1.414], [-2, 0], [-1.414, -1.414], [0, -2], [1.414, -1.414]]}"#

  /// An ε-prediction MLP teacher on the ring, trained by `train-teacher-toy.json` (2000 steps), made once.
  static let teacher: String = {
    let output = NSTemporaryDirectory() + "distillery-eps-teacher-\(UUID().uuidString)"
    let manifest = try! Manifest.load(
      path: PipelineRun.templatePath("train-teacher-toy.json"),
      overrides: [
        "output=\(output)", "training.steps=2000", "evaluation.every=2000",
        #"evaluation.metrics=["energy-distance", "mode-coverage"]"#,
      ], registry: PipelineRun.registry)
    let pipeline = try! AssembledPipeline.assemble(manifest, registry: PipelineRun.registry)
    let run = RunFolder(path: output)
    _ = try! run.prepare(for: manifest.resolvedJSON, mode: .fresh)
    try! Trainer(pipeline: pipeline, folder: run, progress: ProgressReporter(style: .silent))
      .run(resumedFrom: nil, interruptible: false)
    return output + "/denoiser"
  }()

  /// A one-step (or `timesteps`) DMD student of `teacher`: DM with a fake score copied from the
  /// teacher plus knowledge distillation on 1024 in-memory pairs, 500 steps of 256; `extra` is
  /// added to the generator and fake-score entries.
  static func student(
    teacher: String, timesteps: [Int] = [999], prediction: String? = nil, steps: Int = 500
  )
    -> JSONValue
  {
    let extra = prediction.map { #", "prediction": "\#($0)""# } ?? ""
    let text = """
      {"seed": 0, "teacher": {"type": "folder", "path": \(JSONValue.quoted(teacher))}, "data": \(ring),
       "generator": {"type": "denoiser", "init": "teacher", "timesteps": \(timesteps)\(extra)},
       "scores": {"real": {"type": "teacher"},
                  "fake": {"type": "trained", "init": "teacher", "optimizer": {"type": "adam", "lr": 0.0005}\(extra)}},
       "losses": [{"type": "distribution-matching"}, {"type": "knowledge-distillation", "steps": 50, "pairs": 1024}],
       "optimizer": {"type": "adam", "lr": 0.0005},
       "training": {"steps": \(steps), "batchSize": 256, "ema": 0.99, "checkpointEvery": \(steps)},
       "evaluation": {"every": \(steps), "samples": 1024, "metrics": ["energy-distance", "mode-coverage"]},
       "output": \(JSONValue.quoted(temporaryFolder("student")))}
      """
    return try! JSONValue.parse(Data(text.utf8), source: "test")
  }

  /// The last evaluation of `json` trained to the end.
  static func finalFigures(_ json: JSONValue) throws -> [String: Double] {
    let trainer = try train(json)
    let output = trainer.pipeline.manifest.output
    defer { try? FileManager.default.removeItem(atPath: output) }
    return try #require(
      try MetricsLog.read(path: output + "/metrics.jsonl").last {
        $0.values["eval/within-3std"] != nil
      }
    )
    .values
  }

  static func assemble(_ json: JSONValue) throws -> AssembledPipeline {
    let manifest = try Manifest.decode(
      json, source: "test", baseDirectory: NSTemporaryDirectory(), fallbackName: "test",
      registry: PipelineRun.registry)
    return try AssembledPipeline.assemble(manifest, registry: PipelineRun.registry)
  }

  /// A teacher folder holding an untrained ε-, v- or x₀-prediction MLP (random weights, ε̂ of order 1).
  static func untrainedTeacher(
    _ prediction: Prediction, schedule: ScheduleConfig = ScheduleConfig()
  ) throws -> String {
    let folder = temporaryFolder("untrained")
    var rng = RandomGenerator(seed: 3)
    let denoiser: any SavableDenoiser = try DenoiserFolder.makeDenoiser(
      network: try JSONValue.parse(
        Data(#"{"type": "mlp", "inputSize": 2, "width": 32, "depth": 2, "outputSize": 2}"#.utf8),
        source: "test"),
      schedule: schedule.schedule, scheduleConfig: schedule, prediction: prediction,
      location: "test", using: &rng)
    try denoiser.save(folder: folder)
    return folder
  }

  /// A one-step DMD student of the diffusers UNet fixture (ε, random weights, 3×16×16).
  static func imageStudent(clipSample: Bool? = nil, steps: Int = 1) throws -> AssembledPipeline {
    let teacher = coreFixtures.appendingPathComponent("unet2d-small").path
    let clip = clipSample.map { #", "clipSample": \#($0)"# } ?? ""
    let text = """
      {"teacher": {"type": "folder", "path": \(JSONValue.quoted(teacher))},
       "generator": {"type": "denoiser", "init": "teacher", "steps": \(steps)\(clip)},
       "scores": {"real": {"type": "teacher"}, "fake": {"type": "trained", "init": "teacher"}},
       "losses": [{"type": "distribution-matching"}], "training": {"steps": 1, "batchSize": 2}}
      """
    return try assemble(try JSONValue.parse(Data(text.utf8), source: "test"))
  }

  @Test func imageCopiesOfAnEpsilonTeacherKeepEpsilonAndClipTheirSamples() throws {
    let pipeline = try Self.imageStudent()
    let generator = try #require(pipeline.generator as? DenoiserSampleGenerator)
    #expect(generator.denoiser.prediction == .epsilon && generator.clipSample)
    #expect(pipeline.scores["fake"]?.denoiser.prediction == .epsilon)
    guard case .object(let config) = generator.configJSON else {
      Issue.record("generator.json")
      return
    }
    #expect(config["clipSample"] == .bool(true))
    var rng = RandomGenerator(seed: 2)
    let noise = Tensor.normal([2, 3, 16, 16], using: &rng)
    let samples = withoutGradients { generator(noise) }
    #expect(samples.scalars.allSatisfy { abs($0) <= 1 })
    // Unclipped, x̂₀ = (x − σ·ε̂)/α at t = 999 is ε̂'s error times 1/α ≈ 157.
    let unclipped = try #require(
      try Self.imageStudent(clipSample: false).generator as? DenoiserSampleGenerator)
    #expect(!unclipped.clipSample)
    let far = withoutGradients { unclipped(noise) }.scalars.map(abs).max() ?? 0
    #expect(far > 10, "largest unclipped one-step value \(far)")
  }

  @Test func clippedCopiesMoveWithTheEpsilonOfTheClippedEstimate() throws {
    // Two steps of the clipped ε copy against diffusers' DDIM step with
    // use_clipped_model_output (SamplerTests checks that step against diffusers).
    let generator = try #require(try Self.imageStudent(steps: 2).generator as? DenoiserSampleGenerator)
    let (first, second) = (generator.timesteps[0], generator.timesteps[1])
    let schedule = generator.denoiser.schedule
    var rng = RandomGenerator(seed: 4)
    let noise = Tensor.normal([2, 3, 16, 16], using: &rng)
    let network = generator.denoiser
    /// The two DDIM steps from `noise` at `first` to `second` and on to ᾱ = 1.
    func twoSteps(_ ddim: DDIMSampler) -> Tensor {
      withoutGradients {
        let x = ddim.step(
          output: network(noise, timesteps: [Float(first), Float(first)]), alphaBar: schedule.alphaBar(first),
          previousAlphaBar: schedule.alphaBar(second), sample: noise)
        return ddim.step(
          output: network(x, timesteps: [Float(second), Float(second)]), alphaBar: schedule.alphaBar(second),
          previousAlphaBar: 1, sample: x)
      }
    }
    let samples = withoutGradients { generator(noise) }
    let expected = twoSteps(DDIMSampler(schedule: schedule, prediction: .epsilon, useClippedModelOutput: true))
    expectClose(samples.scalars, expected.scalars, rtol: 1e-4, atol: 1e-5)
    // The network's own ε̂ in the move (diffusers' default) lands elsewhere.
    let other = twoSteps(DDIMSampler(schedule: schedule, prediction: .epsilon))
    let apart = zip(samples.scalars, other.scalars).map { abs($0 - $1) }.max() ?? 0
    #expect(apart > 0.1, "largest difference to the model-ε move \(apart)")
  }

  @Test func copiesOfAnEpsilonTeacherPredictVWithItsWeights() throws {
    for (teacherPrediction, expected) in [
      (Prediction.epsilon, Prediction.vPrediction), (.vPrediction, .vPrediction),
      (.sample, .sample),
    ] {
      let folder = try Self.untrainedTeacher(teacherPrediction)
      defer { try? FileManager.default.removeItem(atPath: folder) }
      let pipeline = try Self.assemble(Self.student(teacher: folder))
      let generator = try #require(pipeline.generator as? DenoiserSampleGenerator)
      let fake = try #require(pipeline.scores["fake"])
      #expect(generator.denoiser.prediction == expected, "\(teacherPrediction)")
      let fakeDenoiser = try #require(fake.denoiser as? any SavableDenoiser)
      #expect(fakeDenoiser.prediction == expected, "\(teacherPrediction)")
      #expect((pipeline.teacher as? any SavableDenoiser)?.prediction == teacherPrediction)
      // The same weights as the teacher's.
      let teacher = try #require(
        (pipeline.teacher as? any SavableDenoiser)?.weightsModule?.stateDict())
      for module in [generator.denoiser.weightsModule, fakeDenoiser.weightsModule] {
        let copied = try #require(module?.stateDict())
        #expect(copied.keys.sorted() == teacher.keys.sorted())
        for (name, tensor) in teacher {
          #expect(copied[name]?.scalars == tensor.scalars, "\(name)")
        }
      }
      // An explicit prediction is kept.
      let explicit = try Self.assemble(Self.student(teacher: folder, prediction: "epsilon"))
      #expect((explicit.generator as? DenoiserSampleGenerator)?.denoiser.prediction == .epsilon)
      #expect(explicit.scores["fake"]?.denoiser.prediction == .epsilon)
    }
  }

  /// With ε̂ of order 1 (an untrained network), the one-step student read as ε divides by
  /// α = 0.0064 (std ~150); read as v its x̂₀ = α·x − σ·v̂ is of the order of the network's output.
  @Test func oneStepSamplesOfAnEpsilonTeacherCopyAreBounded() throws {
    let folder = try Self.untrainedTeacher(.epsilon)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var rng = RandomGenerator(seed: 5)
    let noise = Tensor.normal([512, 2], using: &rng)
    func std(_ prediction: String?) throws -> Double {
      let generator = try Self.assemble(Self.student(teacher: folder, prediction: prediction))
        .generator
      let samples = withoutGradients { generator(noise) }
      let mean = samples.mean().item
      return Double((samples - mean).square().mean().item).squareRoot()
    }
    let standard = try std(nil)
    let naive = try std("epsilon")
    #expect(standard < 3, "default one-step sample std \(standard)")
    #expect(naive > 30, "epsilon one-step sample std \(naive)")
  }

  /// DMD of the trained ε toy teacher: one step and four steps, the default (v) against the
  /// copies read as ε. The default comes within 0.85 of the teacher's own within-3-std figure
  /// (its 50-step DDIM); read as ε the one-step student is far off and the four-step one collapses.
  @Test func studentsOfAnEpsilonTeacherReachTheTeachersFigures() throws {
    let teacherRun = (Self.teacher as NSString).deletingLastPathComponent
    let teacherWithin = try #require(
      try MetricsLog.read(path: teacherRun + "/metrics.jsonl").last {
        $0.values["eval/within-3std"] != nil
      }?
      .values["eval/within-3std"])
    for timesteps in [[999], [999, 749, 499, 249]] {
      let standard = try Self.finalFigures(
        Self.student(teacher: Self.teacher, timesteps: timesteps))
      let naive = try Self.finalFigures(
        Self.student(teacher: Self.teacher, timesteps: timesteps, prediction: "epsilon"))
      let (within, naiveWithin) = (standard["eval/within-3std"]!, naive["eval/within-3std"]!)
      let (energy, naiveEnergy) = (
        standard["eval/energy-distance"]!, naive["eval/energy-distance"]!
      )
      print(
        "ε teacher \(timesteps): within 3 std \(within) (ε copy \(naiveWithin), teacher \(teacherWithin)); energy distance \(energy) (ε copy \(naiveEnergy))"
      )
      #expect(
        within >= 0.85 * teacherWithin,
        "\(timesteps): \(within) against the teacher's \(teacherWithin)")
      #expect(
        within >= naiveWithin + 0.15, "\(timesteps): \(within) against the ε copy's \(naiveWithin)")
      #expect(
        energy <= 0.5 * naiveEnergy, "\(timesteps): \(energy) against the ε copy's \(naiveEnergy)")
    }
  }

  /// Where a generator's steps start by default: a one-step ε generator on images at the
  /// middle of the schedule (t = 499), every other (v, several steps, explicit timesteps,
  /// ADD's noised data) where it always did.
  @Test func aOneStepEpsilonImageStudentStartsAtTheMiddle() throws {
    func timesteps(_ prediction: String, steps: Int = 1, _ extra: String = "") throws -> [Int] {
      let json = unetStudentJSON(
        output: temporaryFolder("start"), steps: steps, prediction: prediction, generatorExtra: extra)
      return try #require(try Self.assemble(json).generator as? DenoiserSampleGenerator).timesteps
    }
    #expect(try timesteps("epsilon") == [499])
    #expect(try timesteps("v_prediction") == [999])
    #expect(try timesteps("sample") == [999])
    #expect(try timesteps("epsilon", steps: 4) == [999, 749, 499, 249])
    let explicit = try timesteps("epsilon", #", "timesteps": [999]"#)
    #expect(explicit == [999], "\(explicit)")
    let noisedData = try timesteps("epsilon", #", "trainingInput": "noised-data""#)
    #expect(noisedData == [999], "\(noisedData)")
  }

  /// On a zero-terminal-SNR schedule (ᾱ_999 = 0) an ε-predicting student cannot start at
  /// t = 999: refused naming the key; the default (v) samples finite values.
  @Test func epsilonAtZeroTerminalSNRIsRefused() throws {
    let folder = try Self.untrainedTeacher(
      .epsilon, schedule: ScheduleConfig(rescaleZeroTerminalSNR: true))
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let error = try #require(throws: ManifestError.self) {
      _ = try Self.assemble(Self.student(teacher: folder, prediction: "epsilon"))
    }
    #expect(error.problems.map(\.path) == ["generator.prediction"])
    #expect(error.problems[0].message.contains("zero terminal SNR"), "\(error)")
    #expect(error.problems[0].message.contains("found \"epsilon\""), "\(error)")
    let generator = try Self.assemble(Self.student(teacher: folder)).generator
    var rng = RandomGenerator(seed: 1)
    let samples = withoutGradients { generator(Tensor.normal([16, 2], using: &rng)) }
    #expect(samples.scalars.allSatisfy { $0.isFinite })
  }
}
