import DistillCore
import DistillDiffusion
import Foundation
import Testing

@testable import BuiltInComponents
@testable import DistillPipeline
@testable import EnergyDistance

/// The DMD paper's 2-D experiment (Fig. 3): from a generator concentrated near one mode,
/// the real score alone collapses onto the nearest mode; real + fake scores spread the
/// samples but miss a mode; adding the regression on teacher pairs recovers every mode.
@Suite(.serialized) struct ToyDMDTests {
  /// The energy distance of the teacher's own 50-step DDIM sampler to the reference the
  /// energy-distance metric uses (the same count and seed).
  static func teacherEnergyDistance(_ pipeline: AssembledPipeline) throws -> Double {
    let mixture = try #require(pipeline.teacher as? GaussianMixtureDenoiser)
    let evaluation = pipeline.manifest.evaluation
    var rng = RandomGenerator(seed: evaluation.seed)
    let noise = Tensor.normal([evaluation.samples, mixture.dimension], using: &rng)
    let sampler = DDIMSampler(
      schedule: mixture.schedule, prediction: mixture.prediction, clipSample: false, spacing: .trailing)
    let samples = withoutGradients { sampler.sample(model: { x, t in mixture(x, timesteps: t) }, initialNoise: noise, steps: 50) }
    let reference = try #require(try Trainer(pipeline: pipeline, folder: RunFolder(path: "/nonexistent"), progress: ProgressReporter(style: .silent)).recorder.evaluationContext.referenceSamples(1024))
    return EnergyDistanceMetric.energyDistance(samples, reference, limit: 1024)
  }

  struct Outcome {
    let covered: Int
    let modes: Int
    let energyDistance: Double
  }

  static func outcome(_ manifest: String, _ overrides: [String]) throws -> (Outcome, AssembledPipeline) {
    let (pipeline, final, samples) = try PipelineRun.train(manifest, overrides: overrides)
    let mixture = try #require(pipeline.teacher as? GaussianMixtureDenoiser)
    let energy = try #require(final["eval/energy-distance"])
    return (Outcome(covered: coveredModes(samples, mixture), modes: mixture.means.count, energyDistance: energy), pipeline)
  }

  static func checkFigure3(_ overrides: [String]) throws {
    let (realOnly, _) = try outcome("toy-dmd-real-only.json", overrides)
    #expect((1...2).contains(realOnly.covered), "real only: \(realOnly.covered) of \(realOnly.modes) modes covered")
    let (realFake, _) = try outcome("toy-dmd-real-fake.json", overrides)
    #expect(realFake.covered < realFake.modes, "real + fake: \(realFake.covered) of \(realFake.modes) modes covered")
    let (full, pipeline) = try outcome("toy-dmd-full.json", overrides)
    let teacher = try teacherEnergyDistance(pipeline)
    #expect(full.covered == full.modes, "full: \(full.covered) of \(full.modes) modes covered")
    #expect(
      full.energyDistance <= 2 * teacher,
      "full: energy distance \(full.energyDistance), teacher's 50-step DDIM \(teacher)")
    #expect(full.energyDistance < realFake.energyDistance && full.energyDistance < realOnly.energyDistance)
    print(
      "toy-dmd \(overrides): real-only \(realOnly.covered)/\(realOnly.modes) ED \(realOnly.energyDistance); "
        + "real+fake \(realFake.covered)/\(realFake.modes) ED \(realFake.energyDistance); "
        + "full \(full.covered)/\(full.modes) ED \(full.energyDistance); teacher DDIM-50 ED \(teacher)")
  }

  @Test func twoModesAsInTheFigure() throws {
    try Self.checkFigure3([])
  }

  @Test func fourModesWithUnequalWeights() throws {
    try Self.checkFigure3([
      "teacher.means=[[-2,0],[2,0],[0,2.5],[0,-2.5]]", "teacher.weights=[0.4,0.3,0.2,0.1]",
    ])
  }
}
