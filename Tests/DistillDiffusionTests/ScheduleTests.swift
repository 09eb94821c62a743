import Foundation
import DistillTestSupport
import Testing

@testable import DistillDiffusion

@Suite struct ScheduleTests {
  let fixture: FixtureFile

  init() throws { fixture = try FixtureFile(named: "schedulers") }

  @Test(arguments: [
    ("linear", NoiseSchedule.BetaSchedule.linear),
    ("scaled_linear", .scaledLinear),
    ("squaredcos_cap_v2", .squaredCosCapV2),
  ])
  func alphasCumprodMatchDiffusers(name: String, betas: NoiseSchedule.BetaSchedule) {
    // make_fixtures.py: DDPMScheduler(num_train_timesteps=1000, beta_schedule=name), default 1e-4...0.02.
    let schedule = NoiseSchedule.ddpm(betas: betas)
    #expect(schedule.trainSteps == 1000)
    expectClose(schedule.alphasCumprodFloat, fixture["ddpm_\(name)_alphas_cumprod"].scalars, rtol: 1e-6, atol: 0)
  }

  @Test func linearSchedulesAreBitExact() {
    for name in ["linear", "scaled_linear"] {
      let schedule = NoiseSchedule.ddpm(betas: name == "linear" ? .linear : .scaledLinear)
      #expect(schedule.alphasCumprodFloat == fixture["ddpm_\(name)_alphas_cumprod"].scalars)
    }
  }

  @Test func sigmoidBetas() {
    // DDPMScheduler(beta_schedule="sigmoid").alphas_cumprod[[0, 500, 999]] with diffusers 0.42.1.
    let schedule = NoiseSchedule.ddpm(betas: .sigmoid)
    expectClose(
      [0, 500, 999].map { Float(schedule.alphaBar($0)) },
      [0.9998508095741272, 0.29888758063316345, 3.9681821363046765e-05],
      rtol: 1e-5, atol: 0)
  }

  @Test func zeroTerminalSNR() {
    // DDIMScheduler(beta_schedule=..., rescale_betas_zero_snr=True).alphas_cumprod[[0, 1, 500, 998, 999]].
    let goldens: [(NoiseSchedule.BetaSchedule, Double, Double, [Float])] = [
      (.linear, 0.0001, 0.02, [0.9998999834060669, 0.9997793436050415, 0.07524619996547699, 4.213273285813557e-09, 0]),
      (.scaledLinear, 0.00085, 0.012,
       [0.9991499781608582, 0.9982334971427917, 0.2410186380147934, 1.9679633567193378e-07, 0]),
    ]
    for (betas, start, end, expected) in goldens {
      let schedule = NoiseSchedule.ddpm(betas: betas, start: start, end: end, rescaleZeroTerminalSNR: true)
      let plain = NoiseSchedule.ddpm(betas: betas, start: start, end: end)
      #expect(schedule.alphaBar(999) == 0)
      #expect(schedule.snr(999) == 0)
      #expect(abs(schedule.alphaBar(0) - plain.alphaBar(0)) < 1e-7)
      expectClose([0, 1, 500, 998, 999].map { Float(schedule.alphaBar($0)) }, expected, rtol: 2e-5, atol: 1e-12)
    }
  }

  @Test func coefficients() {
    let schedule = NoiseSchedule.ddpm()
    for t in [0, 10, 500, 999] {
      let abar = schedule.alphaBar(t)
      #expect(abs(pow(schedule.signalScale(t), 2) + pow(schedule.noiseScale(t), 2) - 1) < 1e-12)
      #expect(abs(schedule.sigma(t) - (1 / schedule.snr(t)).squareRoot()) < 1e-9 * schedule.sigma(t))
      #expect(abs(schedule.snr(t) - abar / (1 - abar)) < 1e-9 * schedule.snr(t))
    }
    // The reference values of ecosystem-formats.md §3.1.
    #expect(abs(schedule.alphaBar(0) - 0.9999) < 1e-7)
    #expect(abs(schedule.alphaBar(999) - 4.04e-5) < 1e-7)
    let sd = NoiseSchedule.ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)
    #expect(abs(sd.alphaBar(999) - 0.00466) < 1e-5)
    #expect(abs(sd.sigma(999) - 14.6146) < 1e-3)
    // betas recover the table.
    let betas = schedule.betas
    #expect(abs(betas[0] - 0.0001) < 1e-7 && abs(betas[999] - 0.02) < 1e-5)
  }

  @Test func addNoisePerSample() {
    let schedule = NoiseSchedule.ddpm()
    let x0 = testTensor([3, 2, 2, 2], seed: 1)
    let noise = testTensor([3, 2, 2, 2], seed: 2)
    let timesteps = [0, 400, 999]
    let xt = schedule.addNoise(x0: x0, noise: noise, timesteps: timesteps)
    #expect(xt.shape == x0.shape)
    var expected: [Float] = []
    for (i, t) in timesteps.enumerated() {
      for j in 0..<8 {
        let k = i * 8 + j
        let a = Float(schedule.signalScale(t))
        let s = Float(schedule.noiseScale(t))
        expected.append(a * x0.scalars[k] + s * noise.scalars[k])
      }
    }
    expectClose(xt.scalars, expected)
  }

  @Test func timestepSpacing() {
    let leading = TimestepSpacing.leading.timesteps(count: 50).map(Float.init)
    let trailing = TimestepSpacing.trailing.timesteps(count: 50).map(Float.init)
    for prediction in ["epsilon", "v_prediction", "sample"] {
      #expect(leading == fixture["ddim_\(prediction)_leading_timesteps"].scalars)
      #expect(trailing == fixture["ddim_\(prediction)_trailing_timesteps"].scalars)
    }
    // ecosystem-formats.md §3.3 / §3.4 and DDIMScheduler(steps_offset=1).set_timesteps(7).
    #expect(TimestepSpacing.linspace.timesteps(count: 10) == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0])
    #expect(TimestepSpacing.leading.timesteps(count: 10) == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0])
    #expect(TimestepSpacing.trailing.timesteps(count: 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99])
    #expect(TimestepSpacing.leading.timesteps(count: 10, stepsOffset: 1).first == 901)
    #expect(TimestepSpacing.leading.timesteps(count: 7, stepsOffset: 1) == [853, 711, 569, 427, 285, 143, 1])
    #expect(TimestepSpacing.trailing.timesteps(count: 7, stepsOffset: 1) == [999, 856, 713, 570, 428, 285, 142])
    #expect(TimestepSpacing.linspace.timesteps(count: 7, stepsOffset: 1) == [999, 832, 666, 500, 333, 166, 0])
  }

  @Test func continuousSigmas() {
    let karras = NoiseSchedule.karrasSigmas(count: 5, sigmaMin: 0.002, sigmaMax: 80)
    #expect(abs(karras[0] - 80) < 1e-9 && abs(karras[4] - 0.002) < 1e-12)
    // (80^{1/7} + 0.5·(0.002^{1/7} − 80^{1/7}))^7
    let middle = pow((pow(80.0, 1 / 7.0) + pow(0.002, 1 / 7.0)) / 2, 7)
    #expect(abs(karras[2] - middle) < 1e-12)
    #expect(zip(karras, karras.dropFirst()).allSatisfy { $0 > $1 })
    let ve = NoiseSchedule.veSigmas(count: 3, sigmaMin: 0.01, sigmaMax: 100)
    #expect(abs(ve[0] - 100) < 1e-9 && abs(ve[1] - 1) < 1e-12 && abs(ve[2] - 0.01) < 1e-14)
  }
}
