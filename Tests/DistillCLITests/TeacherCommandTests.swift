import ArgumentParser
import DistillDiffusion
import DistillTestSupport
import Foundation
import Testing

@testable import DistillCLI

// The logic of `pipeline sample-teacher` and `pipeline predict`.

private let unetFixtures = coreFixtures

private func temporaryFolder() throws -> String { try makeTemporaryFolder("distillery-cli") }

private func expectError(
  containing parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) { expectDistillError(containing: parts, sourceLocation: sourceLocation, body) }

// MARK: - Sampling the exact teacher

@Suite struct TeacherSamplingTests {
  static func mixture(prediction: Prediction = .epsilon) throws -> GaussianMixtureDenoiser {
    try GaussianMixtureDenoiser(
      means: [[-2, -2], [2, 2], [2, -2]], std: 0.3, weights: [0.5, 0.3, 0.2], schedule: .ddpm(),
      prediction: prediction)
  }

  /// Mode fractions within 0.04 (≈ 3.5 binomial standard errors at 2000 samples), mode means
  /// within 0.1 and mode standard deviations within 25 %.
  static func checkMatchesMixture(
    _ samples: Tensor, _ gmm: GaussianMixtureDenoiser, sourceLocation: SourceLocation = #_sourceLocation
  ) {
    let n = samples.shape[0]
    let labels = gmm.nearestComponent(samples)
    let values = samples.scalars
    for (k, mean) in gmm.means.enumerated() {
      let members = labels.indices.filter { labels[$0] == k }
      let fraction = Double(members.count) / Double(n)
      #expect(
        Swift.abs(fraction - gmm.weights[k]) < 0.04, "mode \(k): fraction \(fraction)", sourceLocation: sourceLocation)
      guard members.count > 10 else { continue }
      for j in 0..<2 {
        let coordinate = members.map { Double(values[$0 * 2 + j]) }
        let m = coordinate.reduce(0, +) / Double(coordinate.count)
        let sd = (coordinate.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(coordinate.count)).squareRoot()
        #expect(Swift.abs(m - mean[j]) < 0.1, "mode \(k) coordinate \(j): mean \(m)", sourceLocation: sourceLocation)
        #expect(
          Swift.abs(sd / gmm.std - 1) < 0.25, "mode \(k) coordinate \(j): std \(sd)", sourceLocation: sourceLocation)
      }
    }
  }

  @Test func ddim50StepsReproducesTheMixture() throws {
    let gmm = try Self.mixture()
    var calls = 0
    let samples = try sampleTeacher(
      gmm, options: TeacherSamplingOptions(sampler: .ddim, steps: 50, count: 2000, seed: 0, batchSize: 500)
    ) { done, total in
      calls += 1
      #expect(total == 200 && done == calls)
    }
    #expect(samples.shape == [2000, 2])
    #expect(calls == 200)
    Self.checkMatchesMixture(samples, gmm)
  }

  @Test(arguments: [TeacherSamplerKind.ddpm, .euler, .heun])
  func otherSamplersReproduceTheMixture(kind: TeacherSamplerKind) throws {
    let gmm = try Self.mixture(prediction: kind == .euler ? .vPrediction : .epsilon)
    let samples = try sampleTeacher(
      gmm,
      options: TeacherSamplingOptions(
        sampler: kind, steps: kind == .heun ? 25 : 50, count: 2000, seed: 1, batchSize: 1000))
    Self.checkMatchesMixture(samples, gmm)
  }

  @Test func deterministicSamplesDoNotDependOnBatchSize() throws {
    let gmm = try Self.mixture()
    let a = try sampleTeacher(
      gmm, options: TeacherSamplingOptions(sampler: .ddim, steps: 10, count: 7, seed: 5, batchSize: 7))
    let b = try sampleTeacher(
      gmm, options: TeacherSamplingOptions(sampler: .ddim, steps: 10, count: 7, seed: 5, batchSize: 3))
    #expect(a == b)
  }

  /// The library names the setting; the CLI's message names the flag.
  @Test func badOptionsNameTheFlag() throws {
    let gmm = try Self.mixture()
    for (options, setting, flag) in [
      (TeacherSamplingOptions(steps: 0), SamplingSettingError.Setting.steps, "--steps: expected 1...1000"),
      (TeacherSamplingOptions(count: 0), .count, "--count: expected at least 1, found 0"),
      (TeacherSamplingOptions(batchSize: 0), .batchSize, "--batch-size: expected at least 1, found 0"),
    ] {
      #expect {
        _ = try sampleTeacher(gmm, options: options)
      } throws: { error in
        (error as? SamplingSettingError)?.setting == setting && message(for: error).hasPrefix(flag)
          && exitCode(for: error) == ExitCode(2)
      }
    }
  }
}

// MARK: - Predict

@Suite struct PredictTests {
  @Test func predictWritesTheNetworkOutput() throws {
    let folder = unetFixtures.appendingPathComponent("unet2d-small").path
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let out = tmp + "/out.safetensors"
    let report = try predict(teacherPath: folder, inputPath: folder + "/io.safetensors", outputPath: out)
    #expect(report.outputShape == [2, 3, 16, 16])
    #expect(report.maxAbsDifferenceFromReference! < 1e-4)
    let written = try SafetensorsFile.read(contentsOf: out)
    #expect(written.keys == ["output"])
    let io = try SafetensorsFile.read(contentsOf: folder + "/io.safetensors")
    expectClose(try written.tensor("output"), try io.tensor("output"), rtol: 0, atol: 1e-4)
    // A second run replaces the file.
    _ = try predict(teacherPath: folder, inputPath: folder + "/io.safetensors", outputPath: out)
    #expect(try FileManager.default.contentsOfDirectory(atPath: tmp) == ["out.safetensors"])
  }

  @Test func predictErrorsNameTheFileAndKey() throws {
    let folder = unetFixtures.appendingPathComponent("unet2d-small").path
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let input = tmp + "/in.safetensors"
    try SafetensorsFile.write(["sample": Tensor.zeros([2, 3, 16, 16])], to: input)
    expectError(containing: [input, "timestep"]) {
      _ = try predict(teacherPath: folder, inputPath: input, outputPath: tmp + "/o.safetensors")
    }
    try SafetensorsFile.write(["sample": Tensor.zeros([2, 4, 16, 16]), "timestep": Tensor([1])], to: input)
    expectError(containing: [input, "sample", "[N, 3, H, W]"]) {
      _ = try predict(teacherPath: folder, inputPath: input, outputPath: tmp + "/o.safetensors")
    }
    try SafetensorsFile.write(["sample": Tensor.zeros([2, 3, 16, 16]), "timestep": Tensor([1, 2, 3])], to: input)
    expectError(containing: [input, "timestep"]) {
      _ = try predict(teacherPath: folder, inputPath: input, outputPath: tmp + "/o.safetensors")
    }
    expectError(containing: [tmp + "/missing.safetensors"]) {
      _ = try predict(teacherPath: folder, inputPath: tmp + "/missing.safetensors", outputPath: tmp + "/o.safetensors")
    }
    #expect(!FileManager.default.fileExists(atPath: tmp + "/o.safetensors"))
  }
}

// MARK: - Classes and guidance

@Suite struct ClassConditionalCommandTests {
  static func conditionalMixture() throws -> GaussianMixtureDenoiser {
    try GaussianMixtureDenoiser(
      means: [[2, 0], [0, 2], [-2, 0], [0, -2]], std: 0.25, schedule: .ddpm(), componentClasses: [0, 1, 0, 1])
  }

  @Test func sampleTeacherDrawsTheClassAskedFor() throws {
    let gmm = try Self.conditionalMixture()
    let samples = try sampleTeacher(gmm, options: TeacherSamplingOptions(count: 200, guidance: 2, classLabel: 1))
    let components = gmm.nearestComponent(samples)
    #expect(components.allSatisfy { gmm.componentClasses![$0] == 1 })
    // Without --class, sample i is of class i mod 2.
    let mixed = gmm.nearestComponent(try sampleTeacher(gmm, options: TeacherSamplingOptions(count: 40)))
    #expect(mixed.indices.allSatisfy { gmm.componentClasses![mixed[$0]] == $0 % 2 })
  }

  @Test func badClassesAndGuidanceNameTheFlag() throws {
    let conditional = try Self.conditionalMixture()
    let plain = try TeacherSamplingTests.mixture()
    for (teacher, options, flag) in [
      (conditional as any Denoiser, TeacherSamplingOptions(classLabel: 2), "--class: expected a class in 0..<2, found 2"),
      (plain, TeacherSamplingOptions(classLabel: 0), "--class: expected no class for a teacher without classes"),
      (plain, TeacherSamplingOptions(guidance: 3), "--guidance: expected 1 for a teacher without classes"),
      (conditional, TeacherSamplingOptions(guidance: -1), "--guidance: expected a non-negative number"),
    ] {
      #expect {
        _ = try sampleTeacher(teacher, options: options)
      } throws: { error in
        message(for: error).hasPrefix(flag) && exitCode(for: error) == ExitCode(2)
      }
    }
  }

  /// `class_labels` beside `sample` and `timestep` reach the network (the diffusers fixture of
  /// a class-conditional UNet2DModel), and are refused where they do not fit.
  @Test func predictReadsClassLabels() throws {
    let folder = unetFixtures.appendingPathComponent("unet2d-classcond").path
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let report = try predict(teacherPath: folder, inputPath: folder + "/io.safetensors", outputPath: tmp + "/o.safetensors")
    #expect(report.maxAbsDifferenceFromReference! < 1e-4)
    let io = try SafetensorsFile.read(contentsOf: folder + "/io.safetensors")
    let input = tmp + "/in.safetensors"
    var tensors = try io.tensors()
    tensors["class_labels"] = Tensor([0, 5, 1])
    try SafetensorsFile.write(tensors, to: input)
    expectError(containing: [input, "class_labels", "class labels in 0..<5", "5.0"]) {
      _ = try predict(teacherPath: folder, inputPath: input, outputPath: tmp + "/o.safetensors")
    }
    tensors["class_labels"] = nil
    try SafetensorsFile.write(tensors, to: input)
    expectError(containing: [input, "class_labels", "for the class-conditional teacher", "none"]) {
      _ = try predict(teacherPath: folder, inputPath: input, outputPath: tmp + "/o.safetensors")
    }
    let plain = unetFixtures.appendingPathComponent("unet2d-small").path
    var plainTensors = try SafetensorsFile.read(contentsOf: plain + "/io.safetensors").tensors()
    plainTensors["class_labels"] = Tensor([0, 1])
    try SafetensorsFile.write(plainTensors, to: input)
    expectError(containing: [input, "class_labels", "no class labels: the teacher takes none"]) {
      _ = try predict(teacherPath: plain, inputPath: input, outputPath: tmp + "/o.safetensors")
    }
  }
}

// MARK: - Text-to-image teachers

@Suite struct TextToImageCommandTests {
  /// `sample-teacher --prompt ... --latents FILE` on sd-tiny gives diffusers' pipeline images
  /// (mapped to [−1, 1]), and refuses what it cannot do, naming the flag or file.
  @Test func samplesAsDiffusersAndRefusesByName() throws {
    let pipeline = try StableDiffusionFolder(folder: sdTinyFixture)
    let io = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/io.safetensors")
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let latents = tmp + "/latents.safetensors"
    try SafetensorsFile.write(["latents": io.tensor("pipeline_latents")], to: latents)
    var warnings: [String] = []
    let samples = try sampleTextToImage(
      pipeline, prompts: ["a red circle", "A photo of two blue squares!"], guidance: 3, sampler: .ddim, steps: 4,
      latentsPath: latents, seed: 0) { warnings.append($0) }
    let expected = try io.tensor("pipeline_images").permuted([0, 3, 1, 2]) * 2 - 1
    #expect(zip(samples.scalars, expected.scalars).map { Swift.abs($0 - $1) }.max()! < 2e-3)
    #expect(warnings.isEmpty)
    // A prompt beyond 77 positions is truncated with a warning.
    _ = try sampleTextToImage(
      pipeline, prompts: [String(repeating: "a ", count: 90)], guidance: 1, sampler: .ddim, steps: 1, latentsPath: nil,
      seed: 0) { warnings.append($0) }
    #expect(warnings.count == 1 && warnings[0].contains("15 tokens were dropped"))
    expectError(containing: ["--prompt", "at least one prompt"]) {
      _ = try sampleTextToImage(pipeline, prompts: [], guidance: 3, sampler: .ddim, steps: 4, latentsPath: nil, seed: 0) { _ in }
    }
    expectError(containing: ["--sampler", "ddim", "euler"]) {
      _ = try sampleTextToImage(pipeline, prompts: ["x"], guidance: 3, sampler: .euler, steps: 4, latentsPath: nil, seed: 0) { _ in }
    }
    expectError(containing: [latents + ": latents", "[1, 4, 8, 8]", "[2, 4, 8, 8]"]) {
      _ = try sampleTextToImage(pipeline, prompts: ["x"], guidance: 3, sampler: .ddim, steps: 4, latentsPath: latents, seed: 0) { _ in }
    }
  }

  /// `predict` of a UNet2DConditionModel reads `encoder_hidden_states` beside `sample` and
  /// `timestep` (sd-tiny's UNet, through the pipeline folder).
  @Test func predictTakesEncoderHiddenStates() throws {
    let io = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/io.safetensors")
    let tmp = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    let input = tmp + "/in.safetensors"
    var tensors = [
      "sample": try io.tensor("unet_sample"), "timestep": try io.tensor("unet_timestep"),
      "encoder_hidden_states": try io.tensor("unet_encoder_hidden_states"), "output": try io.tensor("unet_output"),
    ]
    try SafetensorsFile.write(tensors, to: input)
    let report = try predict(teacherPath: sdTinyFixture, inputPath: input, outputPath: tmp + "/o.safetensors")
    #expect(report.maxAbsDifferenceFromReference! < 1e-4)
    tensors["encoder_hidden_states"] = nil
    try SafetensorsFile.write(tensors, to: input)
    expectError(containing: [input, "encoder_hidden_states", "UNet2DConditionModel"]) {
      _ = try predict(teacherPath: sdTinyFixture, inputPath: input, outputPath: tmp + "/o.safetensors")
    }
  }
}
