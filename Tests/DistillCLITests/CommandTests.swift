import ArgumentParser
import DistillCore
import DistillDiffusion
import DistillPipeline
import DistillTestSupport
import Foundation
import ImageIO
import Testing

@testable import DistillCLI

/// The repository, for the manifests under Templates/.
private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent().path

/// A fresh temporary folder, removed by the caller's `defer`.
private func scratchFolder() throws -> String {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("distillery-commands-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url.path
}

/// Parses `arguments` as `pipeline` does and runs the command in this process.
private func runCommand(_ arguments: [String]) throws {
  var command = try PipelineCommand.parseAsRoot(arguments)
  try command.run()
}

/// A Distillery denoiser folder holding a two-mode Gaussian mixture (exact, no weights to train).
private func mixtureTeacher(in folder: String) throws -> (path: String, denoiser: GaussianMixtureDenoiser) {
  let gmm = try GaussianMixtureDenoiser(means: [[-2, 0], [2, 0]], std: 0.3, schedule: .ddpm())
  let path = folder + "/teacher"
  try gmm.save(folder: path)
  return (path, gmm)
}

@Suite struct CommandParsingTests {
  @Test func enumOptionsParseToTheLibrarysChoices() throws {
    let components = try #require(try PipelineCommand.parseAsRoot(["components", "--kind", "loss"]) as? ComponentsCommand)
    #expect(components.kind == .loss)
    let teacher = try #require(
      try PipelineCommand.parseAsRoot([
        "sample-teacher", "--teacher", "t", "--sampler", "heun", "--spacing", "trailing", "--steps", "7", "--out", "x.png",
      ]) as? SampleTeacherCommand)
    #expect(teacher.sampling.sampler == .heun && teacher.sampling.steps == 7 && teacher.spacing == .trailing)
    let lpips = try #require(
      try PipelineCommand.parseAsRoot(["lpips", "--net", "vgg", "--weights", "w", "a", "b"]) as? LPIPSCommand)
    #expect(lpips.net == .vgg)
    let precompute = try #require(
      try PipelineCommand.parseAsRoot(["precompute", "m.json", "--out", "p", "--count", "3", "--sampler", "ddpm"])
        as? PrecomputeCommand)
    #expect(precompute.sampling.sampler == .ddpm && precompute.sampling.batchSize == 64 && precompute.count == 3)
  }

  /// A bad flag is bad input: exit code 2 (ArgumentParser's own would be 64), with the
  /// parser's message naming the flag and, for a choice, the values it takes.
  @Test(arguments: [
    (["components", "--kind", "losses"], "'--kind <kind>'"),
    (["sample-teacher", "--teacher", "t", "--sampler", "dpm", "--out", "x.png"], "'ddpm', 'ddim', 'euler' or 'heun'"),
    (["sample-teacher", "--teacher", "t", "--spacing", "even", "--out", "x.png"], "'leading', 'trailing' or 'linspace'"),
    (["lpips", "--net", "resnet", "--weights", "w", "a", "b"], "'alex', 'vgg' or 'squeeze'"),
    (["precompute", "m.json", "--out", "p", "--count", "4", "--sampler", "dpm"], "'--sampler <sampler>'"),
    (["run", "m.json", "--resume", "--force"], "--resume and --force exclude each other"),
    (["run", "m.json", "--bogus"], "Unknown option '--bogus'"),
    (["sample", "--run", "r", "--count", "0", "--out", "x.png"], "--count must be at least 1"),
    (["bench", "--workload", "nope"], "'--workload <workload>'"),
  ])
  func badFlagsExitWithTwo(arguments: [String], message: String) {
    do {
      _ = try PipelineCommand.parseAsRoot(arguments)
      Issue.record("\(arguments) parsed")
    } catch {
      #expect(exitCode(for: error) == ExitCode(2), "\(arguments)")
      let text = PipelineCommand.fullMessage(for: error)
      #expect(text.contains(message), "\(text)")
    }
  }

  @Test func helpExitsWithZero() {
    #expect(exitCode(for: CleanExit.helpRequest(RunCommand.self)) == .success)
    #expect(exitCode(for: CleanExit.message("version")) == .success)
  }

  @Test func exitCodesFollowTheFailure() {
    #expect(exitCode(for: DistillError.io(path: "x", reason: "missing")) == ExitCode(2))
    #expect(exitCode(for: SamplingSettingError(setting: .steps, expected: "1...10", found: "0")) == ExitCode(2))
    #expect(exitCode(for: RunFailure.interrupted(step: 3, checkpointWritten: true)) == ExitCode(130))
    #expect(exitCode(for: RunFailure.nonFinite(term: "loss", step: 3, lastCheckpoint: nil)) == ExitCode(1))
    #expect(exitCode(for: CocoaError(.fileWriteUnknown)) == ExitCode(1))
  }

  /// The library names a setting; the CLI names its flag.
  @Test func settingErrorsAreWordedWithTheirFlag() {
    let error = SamplingSettingError(setting: .batchSize, expected: "at least 1", found: "0")
    #expect(error.description == "batchSize: expected at least 1, found 0")
    #expect(message(for: error) == "--batch-size: expected at least 1, found 0")
    #expect(message(for: SamplingSettingError(setting: .shardSize, expected: "at least 1", found: "0")).hasPrefix("--shard-size:"))
  }
}

@Suite(.serialized) struct CommandRunTests {
  @Test func sampleTeacherWritesTheSamplersSamples() throws {
    let folder = try scratchFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let (teacher, gmm) = try mixtureTeacher(in: folder)
    let out = folder + "/samples.safetensors"
    try runCommand(["sample-teacher", "--teacher", teacher, "--steps", "5", "--count", "6", "--seed", "3", "--out", out])
    let written = try SafetensorsFile.read(contentsOf: out).tensor("samples")
    let expected = try sampleTeacher(gmm, options: TeacherSamplingOptions(steps: 5, count: 6, seed: 3))
    #expect(written == expected)
    // 2-D samples as a PNG: a scatter plot.
    try runCommand(["sample-teacher", "--teacher", teacher, "--steps", "5", "--count", "6", "--out", folder + "/s.png"])
    #expect(try ImageFile.read(folder + "/s.png").shape.first == 3)
  }

  @Test func sampleTeacherRefusesBadSettingsWithTwo() throws {
    let folder = try scratchFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let (teacher, _) = try mixtureTeacher(in: folder)
    #expect(throws: ExitCode(2)) {
      try runCommand(["sample-teacher", "--teacher", teacher, "--steps", "5000", "--out", folder + "/s.safetensors"])
    }
    #expect(throws: ExitCode(2)) {
      try runCommand(["sample-teacher", "--teacher", teacher, "--out", folder + "/s.jpg"])
    }
    #expect(!FileManager.default.fileExists(atPath: folder + "/s.safetensors"))
  }

  @Test func precomputeWritesPairsAndRefusesOtherPairsWithoutForce() throws {
    let folder = try scratchFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let manifest = root + "/Templates/manifests/default.json"
    let out = folder + "/pairs"
    try runCommand(["precompute", manifest, "--out", out, "--count", "8", "--steps", "5", "--quiet"])
    let index = try PairsIndex.read(folder: out)
    #expect(index.count == 8 && index.steps == 5 && index.sampler == "ddim")
    let other = ["precompute", manifest, "--out", out, "--count", "8", "--steps", "5", "--seed", "9", "--quiet"]
    #expect(throws: ExitCode(2)) { try runCommand(other) }
    try runCommand(other + ["--force"])
    #expect(try PairsIndex.read(folder: out).seed == 9)
  }
}
