import Foundation
import DistillTestSupport
import Testing

@testable import DistillDiffusion

@Suite struct ParameterizationTests {
  let schedule = NoiseSchedule.ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012)
  let timesteps = [5, 250, 700, 990]

  @Test func predictionRawValues() {
    #expect(Prediction(rawValue: "v_prediction") == .vPrediction)
    #expect(Prediction(rawValue: "epsilon") == .epsilon && Prediction(rawValue: "sample") == .sample)
  }

  @Test func roundTripsThroughEveryPrediction() {
    let x0 = testTensor([4, 3, 4, 4], seed: 3)
    let eps = testTensor([4, 3, 4, 4], seed: 4, range: -2...2)
    let xt = schedule.addNoise(x0: x0, noise: eps, timesteps: timesteps)
    let v = schedule.velocity(x0: x0, noise: eps, timesteps: timesteps)
    for prediction in Prediction.allCases {
      let output = schedule.target(for: prediction, x0: x0, noise: eps, timesteps: timesteps)
      let x0Hat = schedule.x0(from: output, prediction: prediction, xt: xt, timesteps: timesteps)
      let epsHat = schedule.epsilon(from: output, prediction: prediction, xt: xt, timesteps: timesteps)
      let vHat = schedule.velocity(from: output, prediction: prediction, xt: xt, timesteps: timesteps)
      expectClose(x0Hat, x0, rtol: 1e-3, atol: 1e-3)
      expectClose(epsHat, eps, rtol: 1e-3, atol: 1e-3)
      expectClose(vHat, v, rtol: 1e-3, atol: 1e-3)
      let score = schedule.score(from: output, prediction: prediction, xt: xt, timesteps: timesteps)
      let expectedScore = eps * perSample(timesteps.map { -1 / schedule.noiseScale($0) }, like: eps)
      expectClose(score, expectedScore, rtol: 1e-3, atol: 1e-3)
    }
  }

  @Test func x0ToEpsilonToX0() {
    // x̂₀ → ε̂ (as a sample-prediction) → x̂₀ (as an epsilon-prediction) is the identity for any x_t.
    let xt = testTensor([4, 2, 3, 3], seed: 5, range: -3...3)
    let x0 = testTensor([4, 2, 3, 3], seed: 6)
    let eps = schedule.epsilon(from: x0, prediction: .sample, xt: xt, timesteps: timesteps)
    expectClose(schedule.x0(from: eps, prediction: .epsilon, xt: xt, timesteps: timesteps), x0, rtol: 1e-4, atol: 1e-4)
    // v → x̂₀ → v.
    let v = testTensor([4, 2, 3, 3], seed: 7)
    let x0FromV = schedule.x0(from: v, prediction: .vPrediction, xt: xt, timesteps: timesteps)
    let vBack = schedule.velocity(from: x0FromV, prediction: .sample, xt: xt, timesteps: timesteps)
    expectClose(vBack, v, rtol: 1e-3, atol: 1e-3)
  }

  @Test func conversionsAreDifferentiable() {
    let xt = testTensor([2, 1, 2, 2], seed: 8)
    let output = testTensor([2, 1, 2, 2], seed: 9)
    let t = [100, 800]
    let (_, grads) = valueWithGradients(at: [output, xt]) { p in
      schedule.x0(from: p[0], prediction: .epsilon, xt: p[1], timesteps: t).sum()
    }
    // ∂x̂₀/∂out = −σ/α and ∂x̂₀/∂x_t = 1/α, per sample.
    for (i, step) in t.enumerated() {
      let alpha = Float(schedule.signalScale(step))
      let sigma = Float(schedule.noiseScale(step))
      expectClose(Array(grads[0].scalars[(4 * i)..<(4 * i + 4)]), Array(repeating: -sigma / alpha, count: 4))
      expectClose(Array(grads[1].scalars[(4 * i)..<(4 * i + 4)]), Array(repeating: 1 / alpha, count: 4))
    }
  }

  @Test func edmPreconditioningAtKnownSigma() {
    let edm = EDMPreconditioning(sigmaData: 0.5)
    // σ = 1.2: σ² + σ_d² = 1.69, √ = 1.3.
    #expect(abs(edm.cSkip(1.2) - 0.25 / 1.69) < 1e-15)  // 0.14792899...
    #expect(abs(edm.cOut(1.2) - 0.6 / 1.3) < 1e-15)  // 0.46153846...
    #expect(abs(edm.cIn(1.2) - 1 / 1.3) < 1e-15)  // 0.76923076...
    #expect(abs(edm.cNoise(1.2) - 0.0455803891) < 1e-9)  // ln(1.2)/4
    #expect(abs(edm.lossWeight(1.2) - 1.69 / 0.36) < 1e-12)
    // At σ → 0 the denoiser is the identity; at σ = σ_d it mixes half and half.
    #expect(abs(edm.cSkip(1e-8) - 1) < 1e-12 && edm.cOut(0) == 0)
    #expect(abs(edm.cSkip(0.5) - 0.5) < 1e-15)

    let x = testTensor([2, 1, 2, 2], seed: 10)
    var seen: [Float] = []
    let d = edm.denoise(x, sigmas: [1.2, 0.5]) { input, noise in
      seen = noise
      return input * 0 + 1
    }
    #expect(seen == [Float(log(1.2) / 4), Float(log(0.5) / 4)])
    let expected = (0..<8).map { i in
      let s = i < 4 ? 1.2 : 0.5
      return Float(edm.cSkip(s)) * x.scalars[i] + Float(edm.cOut(s))
    }
    expectClose(d.scalars, expected)
  }

  @Test func consistencyScalings() {
    let cm = ConsistencyScalings.consistencyModel(sigma: 0.002)
    #expect(cm.cSkip == 1 && cm.cOut == 0)
    let lcm = ConsistencyScalings.latentConsistencyModel(timestep: 0)
    #expect(lcm.cSkip == 1 && lcm.cOut == 0)
    let lcm999 = ConsistencyScalings.latentConsistencyModel(timestep: 999)
    #expect(abs(lcm999.cSkip - 0.25 / (9990.0 * 9990 + 0.25)) < 1e-15)
    #expect(abs(lcm999.cOut - 9990 / (9990.0 * 9990 + 0.25).squareRoot()) < 1e-12)
  }
}
