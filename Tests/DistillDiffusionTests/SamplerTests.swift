import Foundation
import DistillTestSupport
import Testing

@testable import DistillDiffusion

@Suite struct SamplerTests {
  let fixture: FixtureFile
  /// Inputs mirrored in Python to make the goldens below (diffusers 0.42.1).
  let x = formulaTensor { sin(0.7 * $0) * 1.5 }
  let e = formulaTensor { cos(0.3 * $0) }
  let z = formulaTensor { sin(1.3 * $0 + 0.5) }

  init() throws { fixture = try FixtureFile(named: "schedulers") }

  @Test(arguments: Prediction.allCases, [TimestepSpacing.leading, .trailing])
  func ddimStepMatchesDiffusers(prediction: Prediction, spacing: TimestepSpacing) throws {
    // make_fixtures.py: DDIMScheduler(linear, prediction_type, timestep_spacing, clip_sample=False,
    // set_alpha_to_one=False), 50 steps, one eta=0 step at timesteps[10].
    let sampler = DDIMSampler(
      schedule: .ddpm(), prediction: prediction, clipSample: false, setAlphaToOne: false, spacing: spacing)
    let key = "ddim_\(prediction.rawValue)_\(spacing.rawValue)"
    let t = try #require(Int(fixture.metadata[key + "_step_t"] ?? ""))
    #expect(sampler.timesteps(steps: 50)[10] == t)
    let out = sampler.step(output: fixture["ddim_model_output"], timestep: t, sample: fixture["ddim_sample"], steps: 50)
    expectClose(out, fixture[key + "_step_out"], rtol: 1e-5, atol: 1e-5)
  }

  @Test func ddimStochasticAndClippedSteps() {
    // DDIMScheduler(clip_sample=False).set_timesteps(50); step(e, 500, x, eta=0.5, variance_noise=z).
    let stochastic = DDIMSampler(schedule: .ddpm(), clipSample: false)
    expectClose(
      stochastic.step(output: e, timestep: 500, sample: x, steps: 50, eta: 0.5, noise: z).scalars,
      [-0.0318295, 1.1450853, 1.5316461, 1.147472, 0.3911276, -0.4523702, -1.224005, -1.597064], rtol: 1e-5, atol: 2e-6)
    // DDIMScheduler() (clip_sample, set_alpha_to_one): the last step returns the clipped x̂₀.
    let clipped = DDIMSampler(schedule: .ddpm())
    expectClose(
      clipped.step(output: e, timestep: 0, sample: x, steps: 50).scalars,
      [-0.0100013, 0.9568202, 1.0, 1.0, 0.4988833, -0.5269086, -1.0, -1.0], rtol: 1e-5, atol: 2e-6)
  }

  @Test func ddimMovesWithTheClippedEstimatesEpsilonWhenAsked() {
    // DDIMScheduler().set_timesteps(50); step(e, 500, x, eta=0, use_clipped_model_output=u):
    // x̂₀ is clipped at 5 of 8 values; with u the move takes (x − √ᾱ·x̂₀)/√(1 − ᾱ).
    let diffusers: [Bool: [Float]] = [
      false: [0.6433762, 0.9628949, 1.0932187, 0.8993974, 0.5153587, -0.2407094, -0.524164, -0.7883101],
      true: [-0.0316809, 0.9628949, 1.4961094, 1.3144538, 0.5153587, -0.5529627, -1.3268868, -1.4916555],
    ]
    for (recompute, expected) in diffusers {
      let sampler = DDIMSampler(schedule: .ddpm(), useClippedModelOutput: recompute)
      expectClose(sampler.step(output: e, timestep: 500, sample: x, steps: 50).scalars, expected, rtol: 1e-5, atol: 2e-6)
    }
  }

  @Test func ddimWithPerfectDenoiserLandsOnPointMass() {
    // Data is the constant c: the exact ε for x_t is (x_t − √ᾱ_t·c)/√(1−ᾱ_t).
    let schedule = NoiseSchedule.ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)
    let c: Float = 0.3
    for prediction in Prediction.allCases {
      let sampler = DDIMSampler(schedule: schedule, prediction: prediction, spacing: .trailing)
      let result = sampler.sample(model: { xt, t in
        let steps = t.map { Int($0) }
        let x0 = Tensor.full(xt.shape, c)
        let eps = schedule.epsilon(from: x0, prediction: .sample, xt: xt, timesteps: steps)
        return schedule.output(for: prediction, x0: x0, epsilon: eps, timesteps: steps)
      }, initialNoise: testTensor([2, 3, 4, 4], seed: 11, range: -2...2), steps: 10)
      expectClose(result.scalars, Array(repeating: c, count: result.count), rtol: 0, atol: 1e-4)
    }
  }

  @Test(arguments: [
    (Prediction.epsilon, [Float](arrayLiteral:
      0.1413829, 1.2786832, 1.391379, 0.8110077, 0.2484654, -0.2516584, -0.8429358, -1.443172)),
    (.vPrediction, [0.1437681, 1.2292047, 1.3084192, 0.7367328, 0.2026809, -0.2044588, -0.7916356, -1.3786349]),
    (.sample, [0.2615892, 1.3255639, 1.3808811, 0.7882653, 0.2369507, -0.1873036, -0.7964882, -1.4134116]),
  ])
  func ddpmStepMatchesDiffusers(prediction: Prediction, expected: [Float]) {
    // DDPMScheduler(prediction_type).set_timesteps(50); step(e, 500, x) with randn_tensor → z.
    let sampler = DDPMSampler(schedule: .ddpm(), prediction: prediction)
    let timesteps = sampler.timesteps(steps: 50)
    let i = timesteps.firstIndex(of: 500)!
    #expect(timesteps[i + 1] == 480)
    let out = sampler.step(output: e, timestep: 500, previousTimestep: 480, sample: x, noise: z)
    expectClose(out.scalars, expected, rtol: 1e-5, atol: 2e-6)
  }

  @Test func ddpmSampleLoopRuns() throws {
    let sampler = DDPMSampler(schedule: .ddpm())
    var calls = 0
    var seed: UInt64 = 100
    let model: DenoisingModel = { xt, _ in calls += 1; return xt * 0 }
    let out = try sampler.sample(model: model, initialNoise: testTensor([1, 1, 2, 2]), steps: 5) { shape in
      seed += 1
      return testTensor(shape, seed: seed)
    }
    #expect(calls == 5 && out.shape == [1, 1, 2, 2])
    #expect(out.scalars.allSatisfy { abs($0) <= 1.01 })
  }

  @Test func eulerKarrasPlanMatchesDiffusers() {
    // make_fixtures.py: EulerDiscreteScheduler(scaled_linear (1e-4...0.02), use_karras_sigmas=True), 25 steps.
    let sampler = EulerSampler(schedule: .ddpm(betas: .scaledLinear))
    let plan = sampler.plan(steps: 25)
    expectClose(plan.sigmas.map(Float.init), fixture["euler_karras_sigmas"].scalars, rtol: 1e-5, atol: 0)
    expectClose(plan.timesteps, fixture["euler_karras_timesteps"].scalars, rtol: 1e-5, atol: 1e-4)
    // The SD example of ecosystem-formats.md §3.5 (0.00085...0.012, 5 steps).
    let sd = EulerSampler(schedule: .ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)).plan(steps: 5)
    let sdSigmas: [Float] = [
      14.614646911621094, 4.796544075012207, 1.2741053104400635, 0.2479517161846161, 0.02916753478348255, 0,
    ]
    expectClose(sd.sigmas.map(Float.init), sdSigmas, rtol: 1e-5, atol: 0)
    let sdTimesteps: [Float] = [999.0, 785.9539794921875, 427.4897766113281, 58.891502380371094, 0.0]
    expectClose(sd.timesteps, sdTimesteps, rtol: 1e-5, atol: 1e-4)
  }

  @Test func eulerInterpolatedPlansMatchDiffusers() {
    let sdSchedule = NoiseSchedule.ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)
    let plain = EulerSampler(schedule: sdSchedule, useKarrasSigmas: false)
    let plan = plain.plan(steps: 4)
    let expected: [Float] = [14.614646911621094, 2.9183084964752197, 0.9323583841323853, 0.02916753478348255, 0]
    expectClose(plan.sigmas.map(Float.init), expected, rtol: 1e-5, atol: 0)
    #expect(plan.timesteps == [999, 666, 333, 0])
    #expect(abs(plain.initialNoiseSigma(plan) - 14.614646911621094) < 1e-5)
    let leading = EulerSampler(schedule: sdSchedule, useKarrasSigmas: false, spacing: .leading, stepsOffset: 1)
    let leadingPlan = leading.plan(steps: 4)
    let expectedLeading: [Float] = [4.116698265075684, 1.6236929893493652, 0.6983985900878906, 0.04131447896361351, 0]
    expectClose(leadingPlan.sigmas.map(Float.init), expectedLeading, rtol: 1e-5, atol: 0)
    #expect(leadingPlan.timesteps == [751, 501, 251, 1])
    #expect(abs(leading.initialNoiseSigma(leadingPlan) - 4.2364) < 1e-4)
  }

  @Test(arguments: [
    (Prediction.epsilon, [Float](arrayLiteral:
      -3.5224388, -2.3987877, -1.4290198, -0.8947691, -0.7739008, -0.7753423, -0.5070582, 0.3046105)),
    (.vPrediction, [-0.7189124, -0.4005582, -0.1554792, -0.0633335, -0.1116583, -0.2067173, -0.2239288, -0.073593]),
    (.sample, [0.7343702, 0.9582558, 0.9987491, 0.800433, 0.399579, -0.0878205, -0.5141252, -0.7621971]),
  ])
  func eulerStepMatchesDiffusers(prediction: Prediction, expected: [Float]) {
    // EulerDiscreteScheduler(SD betas, use_karras_sigmas=True, prediction_type).set_timesteps(5); step index 1.
    let schedule = NoiseSchedule.ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)
    let sampler = EulerSampler(schedule: schedule, prediction: prediction)
    let plan = sampler.plan(steps: 5)
    let out = sampler.step(output: e, sigma: plan.sigmas[1], sigmaNext: plan.sigmas[2], sample: x)
    expectClose(out.scalars, expected, rtol: 1e-5, atol: 2e-6)
    if prediction == .epsilon {
      // scale_model_input after that step (diffusers' step index 2): x/√(σ₂²+1).
      expectClose(Array(sampler.scaleModelInput(x, sigma: plan.sigmas[2]).scalars.prefix(2)), [0, 0.5966178178787231])
    }
  }

  @Test func eulerWithPerfectDenoiserLandsOnPointMass() {
    let schedule = NoiseSchedule.ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)
    let sampler = EulerSampler(schedule: schedule)
    let plan = sampler.plan(steps: 12)
    let c: Float = -0.4
    let result = sampler.sample(model: { input, t in
      // The model sees x/√(σ²+1); recover σ from the plan and return ε = (x − c)/σ.
      let sigma = plan.sigmas[plan.timesteps.firstIndex(of: t[0])!]
      let x = input * Float((sigma * sigma + 1).squareRoot())
      return (x - c) * Float(1 / sigma)
    }, initialNoise: testTensor([2, 1, 3, 3], seed: 12), steps: 12)
    expectClose(result.scalars, Array(repeating: c, count: result.count), rtol: 0, atol: 1e-4)
  }

  @Test func fullLoopsMatchDiffusers() throws {
    // Model f(x, t) = 0.9·x + t/1000 with SD betas; the Python loops (diffusers 0.42.1):
    //   DDIMScheduler(steps_offset=1).set_timesteps(8); y = s.step(f(y, t), t, y).prev_sample
    //   EulerDiscreteScheduler(use_karras_sigmas=True).set_timesteps(8); y = x·init_noise_sigma;
    //   y = s.step(f(s.scale_model_input(y, t), t), t, y).prev_sample
    let schedule = NoiseSchedule.ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)
    var seen: [Float] = []
    let model: DenoisingModel = { input, t in
      seen.append(t[0])
      return input * 0.9 + t[0] / 1000
    }
    let ddim = try DDIMSampler(schedule: schedule, stepsOffset: 1).sample(model: model, initialNoise: x, steps: 8)
    #expect(seen == [876, 751, 626, 501, 376, 251, 126, 1])
    expectClose(
      ddim.scalars, [0.0942825, 0.4378534, 0.6514, 0.5749005, 0.2551624, -0.0741829, -0.3242963, -0.3775455],
      rtol: 1e-5, atol: 2e-6)
    seen = []
    let euler = try EulerSampler(schedule: schedule).sample(model: model, initialNoise: x, steps: 8)
    #expect(seen.count == 8 && seen.first == 999 && seen.last == 0)
    expectClose(
      euler.scalars, [-1.8571941, -1.193509, -0.8419654, -0.9678997, -1.5120831, -2.2185779, -2.7551079, -2.8693354],
      rtol: 1e-5, atol: 2e-6)
  }

  @Test func heunWithPointMassAndGaussianData() throws {
    let heun = HeunSampler()
    let levels = heun.sigmas(steps: 18)
    #expect(levels.count == 19 && levels.last == 0 && abs(levels[0] - 80) < 1e-9)
    // Point mass at c: D(x; σ) = c, and the ODE is linear in σ, so every step is exact.
    var calls = 0
    let noise = testTensor([2, 1, 2, 2], seed: 13)
    let pointMass: DenoisingModel = { x, _ in calls += 1; return Tensor.full(x.shape, 0.7) }
    let point = try heun.sample(denoiser: pointMass, initialNoise: noise, steps: 18)
    #expect(calls == 35)
    expectClose(point.scalars, Array(repeating: 0.7, count: 8), rtol: 0, atol: 1e-4)
    // Gaussian data N(0, s²): D(x; σ) = x·s²/(s²+σ²), a linear ODE whose exact solution maps x_T to
    // x_T·s/√(s²+σ_max²) = 0.49999·(noise). Algorithm 1 in float64 (a Python transcription of
    // edm_sampler) gives 0.527624637 for 18 steps and 0.500720273 for 100: 2nd-order convergence.
    let s: Float = 0.5
    let gaussianDenoiser: DenoisingModel = { x, sigma in
      x * Tensor(shape: [x.shape[0], 1, 1, 1], scalars: sigma.map { s * s / (s * s + $0 * $0) })
    }
    for (steps, factor) in [(18, Float(0.527624637001047)), (100, 0.5007202730149197)] {
      let gaussian = try heun.sample(denoiser: gaussianDenoiser, initialNoise: noise, steps: steps)
      expectClose(gaussian.scalars, noise.scalars.map { $0 * factor }, rtol: 1e-4, atol: 1e-6)
    }
  }
}
