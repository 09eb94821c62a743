import DistillNN
import Foundation
import DistillTestSupport
import Testing

@testable import DistillDiffusion

private let unetFixtures = coreFixtures

private func temporaryFolder() throws -> String { try makeTemporaryFolder("distillery-teachers") }

private func expectError(
  containing parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) { expectDistillError(containing: parts, sourceLocation: sourceLocation, body) }

// MARK: - Gaussian mixture

@Suite struct GaussianMixtureDenoiserTests {
  static let means: [[Float]] = [[-2], [0.5], [3]]
  static let weights: [Float] = [0.2, 0.5, 0.3]
  static let std: Float = 0.3

  /// E[x₀ | x_t] by numerical integration over x₀ on a fine grid, in Double.
  static func bruteForcePosteriorMean(xt: Double, alphaBar: Double) -> Double {
    let a = alphaBar.squareRoot()
    let s = (1 - alphaBar).squareRoot()
    let std = Double(Self.std)
    // Work in log space relative to the maximum to avoid underflow at small noise.
    let step = 1e-4
    var logs: [Double] = []
    var xs: [Double] = []
    var x0 = -6.0
    while x0 <= 7 {
      var prior = 0.0
      for (mean, w) in zip(means, weights) {
        let z = (x0 - Double(mean[0])) / std
        prior += Double(w) * Foundation.exp(-0.5 * z * z)
      }
      let r = (xt - a * x0) / s
      logs.append(Foundation.log(Swift.max(prior, 1e-300)) - 0.5 * r * r)
      xs.append(x0)
      x0 += step
    }
    let top = logs.max()!
    var numerator = 0.0
    var denominator = 0.0
    for (x, l) in zip(xs, logs) {
      let p = Foundation.exp(l - top)
      numerator += x * p
      denominator += p
    }
    return numerator / denominator
  }

  @Test(arguments: [0, 10, 100, 300, 600, 999])
  func posteriorMeanMatchesNumericalIntegration(t: Int) throws {
    let schedule = NoiseSchedule.ddpm()
    let gmm = try GaussianMixtureDenoiser(means: Self.means, std: Self.std, weights: Self.weights, schedule: schedule)
    let abar = schedule.alphaBar(t)
    let a = abar.squareRoot()
    let xs: [Float] = [-2.5, -1, 0, 0.7, 1.6, 3.2].map { Float(a) * $0 + Float((1 - abar).squareRoot()) * 0.3 }
    let x = Tensor(shape: [xs.count, 1], scalars: xs)
    let expected = xs.map { Float(Self.bruteForcePosteriorMean(xt: Double($0), alphaBar: abar)) }
    let timesteps = Array(repeating: Float(t), count: xs.count)
    expectClose(
      gmm.posteriorMean(x, alphaBars: Array(repeating: abar, count: xs.count)).scalars, expected, rtol: 1e-4, atol: 1e-4
    )
    // The raw output is ε̂; converting back gives the same x̂₀.
    expectClose(gmm.x0(x, timesteps: timesteps).scalars, expected, rtol: 1e-4, atol: 2e-4)
    let eps = gmm(x, timesteps: timesteps).scalars
    let expectedEps = zip(xs, expected).map { (Float((Double($0) - a * Double($1)) / (1 - abar).squareRoot())) }
    expectClose(eps, expectedEps, rtol: 1e-4, atol: 1e-3)
  }

  @Test func predictionTypesAgree() throws {
    let schedule = NoiseSchedule.ddpm()
    let x = testTensor([5, 2], seed: 3, range: -3...3)
    let t: [Float] = [0, 17, 250.5, 640, 999]
    var outputs: [Prediction: Tensor] = [:]
    for prediction in Prediction.allCases {
      let gmm = try GaussianMixtureDenoiser(
        means: [[-1, 1], [2, 0]], std: 0.5, weights: [0.25, 0.75], schedule: schedule, prediction: prediction)
      outputs[prediction] = gmm.x0(x, timesteps: t)
    }
    expectClose(outputs[.epsilon]!, outputs[.sample]!, rtol: 1e-3, atol: 1e-3)
    expectClose(outputs[.vPrediction]!, outputs[.sample]!, rtol: 1e-4, atol: 1e-4)
  }

  @Test func nearlyNoiselessInputIsReturned() throws {
    let gmm = try GaussianMixtureDenoiser(
      means: Self.means, std: Self.std, weights: Self.weights, schedule: .ddpm(), prediction: .sample)
    var rng = RandomGenerator(seed: 4)
    let x = gmm.sample(count: 64, using: &rng)
    let x0 = gmm(x, timesteps: Array(repeating: 0, count: 64))
    expectClose(x0, x, rtol: 2e-3, atol: 2e-3)
  }

  @Test func fractionalTimestepsInterpolateTheSchedule() {
    let schedule = NoiseSchedule.ddpm()
    #expect(schedule.alphaBar(at: 10) == schedule.alphaBar(10))
    #expect(schedule.alphaBar(at: -3) == schedule.alphaBar(0))
    #expect(schedule.alphaBar(at: 1500) == schedule.alphaBar(999))
    let middle = schedule.alphaBar(at: 400.5)
    #expect(middle < schedule.alphaBar(400) && middle > schedule.alphaBar(401))
    // The inverse of the Euler sampler's σ → t map.
    let logSigmas = schedule.sigmas.map { Foundation.log($0) }
    let sigma = 3.7
    let t = EulerSampler.timestep(forSigma: sigma, logSigmas: logSigmas)
    let abar = schedule.alphaBar(at: t)
    #expect(Swift.abs(((1 - abar) / abar).squareRoot() - sigma) < 1e-9)
  }

  @Test func samplingDrawsTheMixture() throws {
    let gmm = try GaussianMixtureDenoiser(means: [[-2, 0], [3, 1]], std: 0.5, weights: [0.3, 0.7])
    var rng = RandomGenerator(seed: 11)
    let (samples, components) = gmm.sampleWithComponents(count: 4000, using: &rng)
    #expect(samples.shape == [4000, 2])
    let fraction = Double(components.filter { $0 == 0 }.count) / 4000
    #expect(Swift.abs(fraction - 0.3) < 0.03)
    #expect(gmm.nearestComponent(samples) == components)
  }

  @Test func invalidMixturesAreRejected() {
    expectError(containing: ["means", "equal dimension"]) {
      _ = try GaussianMixtureDenoiser(means: [[0, 1], [1]], std: 1)
    }
    expectError(containing: ["std"]) { _ = try GaussianMixtureDenoiser(means: [[0]], std: 0) }
    expectError(containing: ["weights", "summing to 1"]) {
      _ = try GaussianMixtureDenoiser(means: [[0], [1]], std: 1, weights: [0.5, 0.6])
    }
    expectError(containing: ["weights", "positive"]) {
      _ = try GaussianMixtureDenoiser(means: [[0], [1]], std: 1, weights: [1.5, -0.5])
    }
    expectError(containing: ["weights", "one weight per mean"]) {
      _ = try GaussianMixtureDenoiser(means: [[0], [1]], std: 1, weights: [1])
    }
    expectError(containing: ["means"]) { _ = try GaussianMixtureDenoiser(means: [], std: 1) }
  }
}

// MARK: - diffusers UNet teachers

@Suite struct UNetDenoiserTests {
  @Test(arguments: ["unet2d-small", "unet2d-plain"])
  func matchesDiffusers(fixture: String) throws {
    let folder = unetFixtures.appendingPathComponent(fixture).path
    let teacher = try loadTeacher(path: folder)
    #expect(teacher is UNetDenoiser)
    #expect(teacher.prediction == .epsilon)
    #expect(teacher.schedule == NoiseSchedule.ddpm())
    let io = try SafetensorsFile.read(contentsOf: folder + "/io.safetensors")
    let output = withoutGradients { teacher(try! io.tensor("sample"), timesteps: try! io.tensor("timestep").scalars) }
    expectClose(output, try io.tensor("output"), rtol: 0, atol: 1e-4)
  }

  /// A diffusers pipeline folder: `unet/` and `scheduler/scheduler_config.json`.
  @Test func pipelineFolderReadsTheScheduler() throws {
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    try FileManager.default.copyItem(
      atPath: unetFixtures.appendingPathComponent("unet2d-plain").path, toPath: tmp + "/unet")
    try FileManager.default.createDirectory(atPath: tmp + "/scheduler", withIntermediateDirectories: true)
    let config = """
      {"_class_name": "DDIMScheduler", "_diffusers_version": "0.30.0", "num_train_timesteps": 500,
       "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": false,
       "prediction_type": "v_prediction", "rescale_betas_zero_snr": true, "timestep_spacing": "trailing",
       "set_alpha_to_one": false, "steps_offset": 1, "trained_betas": null}
      """
    try Data(config.utf8).write(to: URL(fileURLWithPath: tmp + "/scheduler/scheduler_config.json"))
    let teacher = try loadTeacher(path: tmp) as! UNetDenoiser
    #expect(teacher.prediction == .vPrediction)
    #expect(
      teacher.schedule
        == .ddpm(betas: .scaledLinear, start: 0.00085, end: 0.012, steps: 500, rescaleZeroTerminalSNR: true))
    #expect(teacher.scheduleSource.hasSuffix("scheduler/scheduler_config.json"))
    // Also through the unet/ folder itself.
    #expect((try loadTeacher(path: tmp + "/unet")).prediction == .vPrediction)

    let bad = config.replacingOccurrences(of: "\"scaled_linear\"", with: "\"exp\"")
    try Data(bad.utf8).write(to: URL(fileURLWithPath: tmp + "/scheduler/scheduler_config.json"))
    expectError(containing: ["scheduler_config.json", "beta_schedule", "exp"]) { _ = try loadTeacher(path: tmp) }
    let badPrediction = config.replacingOccurrences(of: "\"v_prediction\"", with: "\"velocity\"")
    try Data(badPrediction.utf8).write(to: URL(fileURLWithPath: tmp + "/scheduler/scheduler_config.json"))
    expectError(containing: ["scheduler_config.json", "prediction_type"]) { _ = try loadTeacher(path: tmp) }
    let edm = config.replacingOccurrences(of: "DDIMScheduler", with: "EDMEulerScheduler")
    try Data(edm.utf8).write(to: URL(fileURLWithPath: tmp + "/scheduler/scheduler_config.json"))
    expectError(containing: ["scheduler_config.json", "_class_name"]) { _ = try loadTeacher(path: tmp) }
  }
}

// MARK: - Distillery's own denoiser folders

@Suite struct DenoiserFolderTests {
  @Test func mlpRoundTrip() throws {
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    var rng = RandomGenerator(seed: 2)
    let denoiser = MLPDenoiser(
      config: MLPDenoiserConfig(inputSize: 2, width: 32, depth: 2, timeEmbedding: 16, activation: .gelu),
      scheduleConfig: ScheduleConfig(betaSchedule: .scaledLinear, betaStart: 0.00085, betaEnd: 0.012),
      prediction: .vPrediction, using: &rng)
    try denoiser.save(folder: tmp)
    #expect(Set(try FileManager.default.contentsOfDirectory(atPath: tmp)) == ["denoiser.json", "weights.safetensors"])
    let loaded = try loadTeacher(path: tmp) as! MLPDenoiser
    #expect(loaded.network.config == denoiser.network.config)
    #expect(loaded.schedule == denoiser.schedule)
    #expect(loaded.scheduleConfig == denoiser.scheduleConfig)
    #expect(loaded.prediction == .vPrediction)
    let x = testTensor([4, 2], seed: 9)
    let t: [Float] = [0, 10.5, 500, 999]
    #expect(loaded(x, timesteps: t) == denoiser(x, timesteps: t))
  }

  @Test func unetRoundTrip() throws {
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let original = try UNetDenoiser.load(diffusersFolder: unetFixtures.appendingPathComponent("unet2d-small").path)
    try original.save(folder: tmp)
    let loaded = try loadTeacher(path: tmp + "/denoiser.json") as! UNetDenoiser
    #expect(loaded.unet.config == original.unet.config)
    #expect(loaded.schedule == original.schedule)
    let x = testTensor([2, 3, 16, 16], seed: 5)
    let t: [Float] = [3, 700]
    #expect(withoutGradients { loaded(x, timesteps: t) == original(x, timesteps: t) })
  }

  @Test func gaussianMixtureRoundTripWithExplicitSchedule() throws {
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let schedule = NoiseSchedule(alphasCumprod: (0..<50).map { 1 - 0.019 * Double($0) - 0.001 })
    let gmm = try GaussianMixtureDenoiser(
      means: [[0.25, -1, 2, 0], [1, 1, 1, 1]], std: 0.125, weights: [0.375, 0.625], schedule: schedule,
      prediction: .sample, sampleShape: [1, 2, 2])
    try gmm.save(folder: tmp)
    #expect(try FileManager.default.contentsOfDirectory(atPath: tmp) == ["denoiser.json"])
    let loaded = try loadTeacher(path: tmp) as! GaussianMixtureDenoiser
    #expect(loaded.means == gmm.means && loaded.weights == gmm.weights && loaded.std == gmm.std)
    #expect(loaded.schedule == schedule)
    #expect(loaded.sampleShape == [1, 2, 2])
    let x = testTensor([3, 1, 2, 2], seed: 1)
    #expect(loaded(x, timesteps: [0, 20, 49]) == gmm(x, timesteps: [0, 20, 49]))
  }

  /// Writes an MLP denoiser to `folder` and returns the text of its denoiser.json.
  private func savedMLP(_ folder: String) throws -> String {
    var rng = RandomGenerator(seed: 0)
    let denoiser = MLPDenoiser(config: MLPDenoiserConfig(inputSize: 2, width: 8, depth: 1), using: &rng)
    try denoiser.save(folder: folder)
    return try String(contentsOfFile: folder + "/denoiser.json", encoding: .utf8)
  }

  @Test func loadErrorsNameTheFileAndKey() throws {
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let json = tmp + "/denoiser.json"
    let weights = tmp + "/weights.safetensors"

    expectError(containing: [tmp + "/nothing-here", "no such file"]) {
      _ = try loadTeacher(path: tmp + "/nothing-here")
    }
    expectError(containing: [tmp, "not a teacher folder"]) { _ = try loadTeacher(path: tmp) }

    let text = try savedMLP(tmp)
    _ = try loadTeacher(path: tmp)

    try text.replacingOccurrences(of: "\"width\"", with: "\"widht\"").write(
      toFile: json, atomically: true, encoding: .utf8)
    expectError(containing: [json, "widht"]) { _ = try loadTeacher(path: tmp) }

    try text.replacingOccurrences(of: "\"depth\" : 1", with: "\"depth\" : \"one\"").write(
      toFile: json, atomically: true, encoding: .utf8)
    expectError(containing: [json, "depth", "an integer"]) { _ = try loadTeacher(path: tmp) }

    try text.replacingOccurrences(of: "\"epsilon\"", with: "\"noise\"").write(
      toFile: json, atomically: true, encoding: .utf8)
    expectError(containing: [json, "prediction"]) { _ = try loadTeacher(path: tmp) }

    try text.replacingOccurrences(of: "\"linear\"", with: "\"cubic\"").write(
      toFile: json, atomically: true, encoding: .utf8)
    expectError(containing: [json, "schedule", "betaSchedule"]) { _ = try loadTeacher(path: tmp) }

    try "{\"format\": \"distillery-denoiser\", \"version\": 1,".write(toFile: json, atomically: true, encoding: .utf8)
    expectError(containing: [json, "JSON"]) { _ = try loadTeacher(path: tmp) }

    // Weights that do not fit the configured network.
    try text.replacingOccurrences(of: "\"width\" : 8", with: "\"width\" : 16").write(
      toFile: json, atomically: true, encoding: .utf8)
    expectError(containing: [weights, "mlp.0.weight", "[8, 18]", "[16, 18]"]) { _ = try loadTeacher(path: tmp) }

    try FileManager.default.removeItem(atPath: weights)
    expectError(containing: [weights]) { _ = try loadTeacher(path: tmp) }

    // A diffusers folder with a bad config key.
    let unet = tmp + "/unet"
    try FileManager.default.copyItem(atPath: unetFixtures.appendingPathComponent("unet2d-plain").path, toPath: unet)
    let config = try String(contentsOfFile: unet + "/config.json", encoding: .utf8)
    try config.replacingOccurrences(of: "\"layers_per_block\"", with: "\"layers_per_blok\"").write(
      toFile: unet + "/config.json", atomically: true, encoding: .utf8)
    expectError(containing: [unet + "/config.json", "layers_per_blok"]) { _ = try loadTeacher(path: unet) }
    try FileManager.default.removeItem(atPath: unet + "/diffusion_pytorch_model.safetensors")
    try config.write(toFile: unet + "/config.json", atomically: true, encoding: .utf8)
    expectError(containing: [unet + "/diffusion_pytorch_model.safetensors"]) { _ = try loadTeacher(path: unet) }
  }

  @Test func scheduleJSONRoundTrips() throws {
    for config in [
      ScheduleConfig(), ScheduleConfig(trainSteps: 200, betaSchedule: .squaredCosCapV2),
      ScheduleConfig(betaSchedule: .scaledLinear, betaStart: 0.00085, betaEnd: 0.012, rescaleZeroTerminalSNR: true),
      ScheduleConfig(trainedBetas: [0.1, 0.2, 0.3]),
    ] {
      let (schedule, decoded) = try ScheduleConfig.decodeDenoiserJSON(config.json, location: "test")
      #expect(decoded == config)
      #expect(schedule == config.schedule)
    }
  }
}
