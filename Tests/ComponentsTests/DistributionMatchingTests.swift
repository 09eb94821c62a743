import DistillCore
import DistillDiffusion
import DistillTestSupport
import Foundation
import Testing

@testable import BuiltInComponents
@testable import DistillPipeline
@testable import DistributionMatching

@Suite struct DistributionMatchingTests {
  /// A manifest whose generator is an MLP on a 2-D Gaussian-mixture teacher, with a real score.
  static func pipeline(extraScores: String = "", losses: String = #"[{"type": "real-score-ascent"}]"#) throws
    -> AssembledPipeline
  {
    let text = """
      {"teacher": {"type": "gaussian-mixture", "means": [[2, 0]], "std": 0.3},
       "generator": {"type": "mlp", "width": 8, "depth": 1},
       "scores": {"real": {"type": "teacher"}\(extraScores)},
       "losses": \(losses)}
      """
    let json = try JSONValue.parse(Data(text.utf8), source: "test")
    let manifest = try Manifest.decode(
      json, source: "test", baseDirectory: NSTemporaryDirectory(), fallbackName: "test", registry: PipelineRun.registry)
    return try AssembledPipeline.assemble(manifest, registry: PipelineRun.registry)
  }

  static func context(_ pipeline: AssembledPipeline, batch: Int) -> StepContext {
    StepContext(
      step: 0, phase: .generator, rows: 0..<batch, globalBatchSize: batch, rank: 0, generator: pipeline.generator,
      teacher: pipeline.teacher, schedule: pipeline.context.schedule, scores: pipeline.scores, data: nil,
      stream: RandomGenerator(seed: 7))
  }

  @Test func normalisedGradientMatchesHandComputedValues() {
    let schedule = ScheduleConfig().schedule
    let x = Tensor(shape: [2, 2], scalars: [1, 2, -1, 0])
    let realX0 = Tensor(shape: [2, 2], scalars: [0, 0, 0, 1])
    let fakeX0 = Tensor(shape: [2, 2], scalars: [1, 1, 0, 0])
    // mean|x − x̂₀_real| per sample: (1 + 2)/2 = 1.5 and (1 + 1)/2 = 1.
    let reference = DistributionMatchingGradient.normalised(
      fakeX0 - realX0, x: x, realX0: realX0, timesteps: [100, 500], schedule: schedule, normalisation: .reference)
    expectClose(reference, Tensor(shape: [2, 2], scalars: [1 / 1.5, 1 / 1.5, 0, -1]), rtol: 1e-6)
    let paper = DistributionMatchingGradient.normalised(
      fakeX0 - realX0, x: x, realX0: realX0, timesteps: [100, 500], schedule: schedule, normalisation: .paper)
    let a0 = Float(schedule.alphaBar(100).squareRoot())
    let a1 = Float(schedule.alphaBar(500).squareRoot())
    expectClose(paper, Tensor(shape: [2, 2], scalars: [a0 / 1.5, a0 / 1.5, 0, -a1]), rtol: 1e-5)
    let none = DistributionMatchingGradient.normalised(
      fakeX0 - realX0, x: x, realX0: realX0, timesteps: [100, 500], schedule: schedule, normalisation: .none)
    expectClose(none, fakeX0 - realX0)
  }

  @Test func nonFiniteGradientIsZeroed() {
    // x equal to x̂₀_real divides by zero: the reference code's nan_to_num makes 0/0 zero.
    let x = Tensor(shape: [1, 2], scalars: [1, 1])
    let g = DistributionMatchingGradient.normalised(
      Tensor(shape: [1, 2], scalars: [0, 0]), x: x, realX0: x, timesteps: [10], schedule: ScheduleConfig().schedule,
      normalisation: .reference)
    #expect(g.scalars == [0, 0])
  }

  @Test func surrogateLossGradientIsGOverNumel() throws {
    let pipeline = try Self.pipeline()
    let context = Self.context(pipeline, batch: 2)
    let x = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]).requiringGrad()
    let g = Tensor(shape: [2, 2], scalars: [0.5, -1, 2, 0])
    let loss = DistributionMatchingGradient.surrogateLoss(x, gradient: g, prefix: "dm", context: context)
    // 0.5·mean((x − (x − g))²) = 0.5·mean(g²) = 0.5·(0.25 + 1 + 4)/4.
    #expect(abs(loss.item - 0.65625) < 1e-6)
    loss.backward()
    expectClose(x.grad!, g / 4, rtol: 1e-6)
    #expect(abs(context.logged["dm/sample-gradient-norm"]! - (5.25).squareRoot() / 4) < 1e-6)
  }

  @Test func timestepRangeIncludesBothEnds() throws {
    #expect(try ComponentEntry.timestepRange([0.02, 0.98], trainSteps: 1000, location: "t") == 20..<981)
    #expect(try ComponentEntry.timestepRange([0, 1], trainSteps: 1000, location: "t") == 0..<1000)
    #expect(throws: DistillError.self) {
      try ComponentEntry.timestepRange([0.5, 0.2], trainSteps: 1000, location: "t")
    }
  }

  /// Real: one Gaussian at (2, 0). Fake: the generator's distribution, one Gaussian at (0, 0).
  /// The update x ← x − g must move samples toward the real mode, at every noise level.
  @Test func gradientMovesSamplesTowardTheRealDistribution() throws {
    let pipeline = try Self.pipeline()
    let schedule = pipeline.context.schedule
    let fake = try GaussianMixtureDenoiser(
      means: [[0, 0]], std: 0.3, weights: nil, schedule: schedule, prediction: .epsilon, location: "fake")
    var rng = RandomGenerator(seed: 3)
    let x = fake.sample(count: 512, using: &rng)
    for normalisation in DistributionMatchingNormalisation.allCases {
      let term = DistributionMatchingTerm(
        real: pipeline.scores["real"]!, fake: ScoreEstimator(denoiser: fake), timesteps: 20..<981,
        normalisation: normalisation)
      let context = Self.context(pipeline, batch: 512)
      let g = term.gradient(x, context: context)
      let step = -g.mean(axes: [0]).scalars[0]
      #expect(step > 0, "\(normalisation): mean x-step \(step) should point toward the real mode at x = 2")
      #expect(context.logged["dm/score-disagreement"]! > 0.1)
    }
    // Real and fake the same: nothing to match, g is zero.
    let same = DistributionMatchingTerm(
      real: pipeline.scores["real"]!, fake: pipeline.scores["real"]!, timesteps: 20..<981, normalisation: .reference)
    #expect(same.gradient(x, context: Self.context(pipeline, batch: 512)).abs().max().item == 0)
  }

  @Test func teacherScoreRefusesGuidanceForAnUnconditionalTeacher() throws {
    #expect {
      try Self.pipeline(extraScores: #", "guided": {"type": "teacher", "guidanceScale": 3}"#)
    } throws: { error in
      "\(error)".contains("guidanceScale") && "\(error)".contains("conditional teacher")
    }
    #expect(try Self.pipeline(extraScores: #", "plain": {"type": "teacher", "guidanceScale": 1}"#).scores["plain"] != nil)
  }
}
