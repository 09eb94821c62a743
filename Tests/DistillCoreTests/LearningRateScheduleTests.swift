import Foundation
import DistillTestSupport
import Testing

@testable import DistillCore

@Suite struct LearningRateScheduleTests {
  @Test func constantIsOne() {
    for step in [0, 1, 1000] { #expect(LearningRateSchedule.constant.factor(atStep: step) == 1) }
  }

  // p = torch.nn.Parameter(torch.zeros(1)); opt = torch.optim.SGD([p], lr=1.0)
  // s = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / 4))
  // lrs over 6 steps (read lr, opt.step(), s.step()): [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
  @Test func linearWarmupMatchesLambdaLR() {
    let schedule = LearningRateSchedule.linearWarmup(steps: 4)
    #expect((0..<6).map { schedule.factor(atStep: $0) } == [0.25, 0.5, 0.75, 1, 1, 1])
    #expect(LearningRateSchedule.linearWarmup(steps: 0).factor(atStep: 0) == 1)
    #expect(schedule.learningRate(base: 2e-4, atStep: 1) == 1e-4)
  }

  // Cosine part: opt = torch.optim.SGD([p], lr=1.0)
  // s = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=90, eta_min=0.1)
  // lr at t = 0, 1, 30, 45, 60, 89, 90 (read lr, opt.step(), s.step()):
  // 1, 0.999725872, 0.775, 0.55, 0.325, 0.100274128, 0.1   -- our step is t + 10 (warm-up 10)
  @Test func cosineWithWarmup() {
    let schedule = LearningRateSchedule.cosine(totalSteps: 100, warmupSteps: 10, minimumFactor: 0.1)
    expectClose((0..<10).map { schedule.factor(atStep: $0) }, (1...10).map { Float($0) / 10 }, rtol: 1e-7)
    let steps = [10, 11, 40, 55, 70, 99, 100]
    let torchValues: [Float] = [1, 0.999725872, 0.775, 0.55, 0.325, 0.100274128, 0.1]
    expectClose(steps.map { schedule.factor(atStep: $0) }, torchValues, rtol: 1e-6, atol: 0)
    // Past the end it stays at the minimum (CosineAnnealingLR would rise again).
    #expect(schedule.factor(atStep: 104) == 0.1)
    #expect(schedule.factor(atStep: 10_000) == 0.1)
  }

  @Test func cosineWithoutWarmupOrMinimum() {
    let schedule = LearningRateSchedule.cosine(totalSteps: 4)
    // 0.5 (1 + cos(pi s / 4)) for s = 0...4
    expectClose((0...5).map { schedule.factor(atStep: $0) }, [1, 0.853553391, 0.5, 0.146446609, 0, 0], rtol: 1e-6, atol: 1e-7)
    // Degenerate: total within warm-up drops to the minimum right after warm-up.
    let short = LearningRateSchedule.cosine(totalSteps: 2, warmupSteps: 4, minimumFactor: 0.2)
    #expect((0..<6).map { short.factor(atStep: $0) } == [0.25, 0.5, 0.75, 1, 1, 0.2])
  }

  @Test func codableRoundTrip() throws {
    for schedule in [LearningRateSchedule.constant, .linearWarmup(steps: 7), .cosine(totalSteps: 9, warmupSteps: 2, minimumFactor: 0.05)] {
      let decoded = try JSONDecoder().decode(LearningRateSchedule.self, from: JSONEncoder().encode(schedule))
      #expect(decoded == schedule)
    }
  }
}
