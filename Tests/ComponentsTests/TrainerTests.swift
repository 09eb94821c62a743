import BuiltInComponents
import DistillCore
import DistillPipeline
import Foundation
import Testing

@Suite struct TrainerTests {
  func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

  @Test func aRunLeavesEveryOutputInItsFolder() throws {
    let output = temporaryFolder() + "/run"
    let trainer = try train(toyManifestJSON(steps: 20, output: output))
    #expect(trainer.step == 20)
    let folder = RunFolder(path: output)
    for path in [
      folder.manifestPath, folder.metricsPath, folder.reportPath, folder.generatorWeightsPath,
      folder.generatorConfigPath, folder.file("samples/step-00000010.png"), folder.file("samples/step-00000020.png"),
    ] {
      #expect(FileManager.default.fileExists(atPath: path), "\(path)")
    }
    #expect(folder.checkpoints.steps() == [10, 20])
    let events = try FileManager.default.contentsOfDirectory(atPath: folder.eventsFolder)
    #expect(events.count == 1 && events[0].hasPrefix("events.out.tfevents."))
    let records = try MetricsLog.read(path: folder.metricsPath)
    #expect(records.contains { $0.step == 20 && $0.values["eval/mode-coverage"] != nil })
    #expect(records.contains { $0.step == 5 && $0.values["loss/distribution-matching"] != nil && $0.values["aux/score-fake"] != nil })
    let report = String(decoding: bytes(folder.reportPath)!, as: UTF8.self)
    #expect(report.contains("<svg") && report.contains("samples/step-00000020.png"))
    let weights = try SafetensorsFile.read(contentsOf: folder.generatorWeightsPath)
    #expect(weights.keys == trainer.pipeline.generator.module.namedParameters().map(\.name).sorted())
  }

  @Test func aResumedRunEndsWithTheSameWeightsBitForBit() throws {
    let base = temporaryFolder()
    try train(toyManifestJSON(steps: 30, output: base + "/straight"))
    // Stop at step 10 (a checkpoint), then resume to 30 with more steps.
    try train(toyManifestJSON(steps: 10, output: base + "/resumed"))
    try train(toyManifestJSON(steps: 30, output: base + "/resumed"), mode: .resume)
    let straight = bytes(base + "/straight/generator.safetensors")
    let resumed = bytes(base + "/resumed/generator.safetensors")
    #expect(straight != nil && straight == resumed)
    let a = bytes(base + "/straight/checkpoints/step-00000030/state.safetensors")
    let b = bytes(base + "/resumed/checkpoints/step-00000030/state.safetensors")
    #expect(a != nil && a == b, "every network, optimizer state and EMA agree")
    let records = try MetricsLog.read(path: base + "/resumed/metrics.jsonl")
    #expect(records.map(\.step) == (try MetricsLog.read(path: base + "/straight/metrics.jsonl")).map(\.step))
  }

  @Test func theGeneratorUpdatesOnTheConfiguredSteps() {
    var settings = TrainingSettingsProbe.make(every: 3, order: "auxiliary-every-step")
    #expect((0..<9).filter { settings.generatorUpdates(at: $0) } == [2, 5, 8])
    #expect((0..<9).allSatisfy { settings.auxiliariesUpdate(at: $0) })
    settings = TrainingSettingsProbe.make(every: 2, order: "alternate")
    #expect((0..<9).filter { settings.generatorUpdates(at: $0) } == [2, 5, 8])
    #expect((0..<9).filter { settings.auxiliariesUpdate(at: $0) } == [0, 1, 3, 4, 6, 7])
  }

  @Test func aNonFiniteLossStopsAndKeepsTheLastGoodCheckpoint() throws {
    let output = temporaryFolder() + "/run"
    var json = toyManifestJSON(steps: 30, output: output)
    try ManifestOverride(parsing: "losses[1]={\"type\": \"constant-test-loss\", \"nanAtStep\": 14}").apply(to: &json)
    let registry = ComponentRegistry.standard(adding: [ConstantLoss.self])
    #expect {
      try train(json, registry: registry)
    } throws: { error in
      guard case RunFailure.nonFinite(let term, let step, let last)? = error as? RunFailure else { return false }
      return term == "losses[1] (constant-test-loss)" && step == 14 && last == 10
    }
    let folder = RunFolder(path: output)
    #expect(folder.checkpoints.steps() == [10])
    #expect(!FileManager.default.fileExists(atPath: folder.generatorWeightsPath))
  }

  @Test func aFolderHoldingARunIsRefusedUnlessResumeOrForce() throws {
    let output = temporaryFolder() + "/run"
    try train(toyManifestJSON(steps: 10, output: output))
    #expect {
      try train(toyManifestJSON(steps: 10, output: output))
    } throws: { error in
      // The library names the modes; the CLI names them by their flags.
      guard let refusal = error as? RunFolder.Refusal else { return false }
      return "\(refusal)".contains("resume mode") && refusal.description(naming: { "<\($0)>" }).contains("pass <resume>")
        && refusal.description(naming: { "<\($0)>" }).contains("or <force> to replace it")
    }
    #expect {
      try train(toyManifestJSON(steps: 20, output: output), mode: .resume, overrides: ["training.batchSize=16"])
    } throws: { "\($0)".contains("training.batchSize") }
    let before = try FileManager.default.contentsOfDirectory(atPath: output + "/checkpoints")
    #expect(before == ["step-00000010"], "refusals changed nothing")
    try train(toyManifestJSON(steps: 10, output: output), mode: .force, overrides: ["seed=9"])
    let saved = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: output + "/manifest.json")), source: "m")
    guard case .object(let object) = saved else { Issue.record("not an object"); return }
    #expect(object["seed"] == .number(9))
    // A folder with someone else's files is never replaced.
    let foreign = temporaryFolder()
    try Data("keep".utf8).write(to: URL(fileURLWithPath: foreign + "/notes.txt"))
    #expect(throws: RunFolder.Refusal.self) { try train(toyManifestJSON(steps: 5, output: foreign), mode: .force) }
    #expect(FileManager.default.fileExists(atPath: foreign + "/notes.txt"))
  }

  @Test func aDenoiserGeneratorTrainsATeacherThatLoadsAsATeacher() throws {
    let base = temporaryFolder()
    let text = """
      {"name": "teacher", "seed": 1,
       "schedule": {"type": "ddpm", "steps": 100},
       "data": {"type": "gaussian-mixture", "means": [[-1, 0], [1, 0]], "std": 0.2},
       "generator": {"type": "denoiser", "init": "new", "steps": 10,
                     "network": {"type": "mlp", "inputSize": 2, "width": 32, "depth": 2, "outputSize": 2}},
       "losses": [{"type": "denoising"}],
       "optimizer": {"type": "adam", "lr": 0.003},
       "training": {"steps": 40, "batchSize": 64, "checkpointEvery": 40},
       "evaluation": {"every": 40, "samples": 64, "metrics": ["energy-distance"]},
       "output": \(JSONValue.quoted(base + "/teacher"))}
      """
    let first = try train(JSONValue.parse(Data(text.utf8), source: "t"))
    let records = try MetricsLog.read(path: base + "/teacher/metrics.jsonl")
    let losses = records.compactMap { $0.values["loss/denoising"] }
    #expect(losses.count >= 2 && losses.last! < losses.first!)
    let teacher = try loadTeacherForTest(base + "/teacher/denoiser")
    #expect(teacher.schedule.trainSteps == 100)
    // The loaded teacher predicts what the trained network does.
    let x = Tensor(shape: [2, 2], scalars: [0.5, 0.1, -0.3, 0.2])
    let generator = first.pipeline.generator as! any DenoiserGenerator
    let expected = withoutGradients { generator.denoiser(x, timesteps: [10, 50]) }
    let actual = teacher(x, timesteps: [10, 50])
    #expect(expected.scalars == actual.scalars)

    // The trained teacher distils like any other; broken weights are refused naming the file.
    var distil = toyManifestJSON(steps: 5, output: base + "/student")
    try ManifestOverride(parsing: "teacher={\"type\": \"folder\", \"path\": \(JSONValue.quoted(base + "/teacher/denoiser"))}")
      .apply(to: &distil)
    try ManifestOverride(parsing: "evaluation.metrics=[]").apply(to: &distil)
    try train(distil)
    let weights = base + "/teacher/denoiser/weights.safetensors"
    let bytes = try Data(contentsOf: URL(fileURLWithPath: weights))
    try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: weights))
    let registry = ComponentRegistry.standard()
    try ManifestOverride(parsing: "output=\(JSONValue.quoted(base + "/student2"))").apply(to: &distil)
    let manifest = try Manifest.decode(distil, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
    #expect {
      try AssembledPipeline.assemble(manifest, registry: registry)
    } throws: { error in
      guard let error = error as? ManifestError, error.problems.count == 1 else { return false }
      return error.problems[0].path == "teacher" && error.problems[0].message.contains("weights.safetensors")
    }
  }
}

import DistillDiffusion

func loadTeacherForTest(_ path: String) throws -> any Denoiser { try loadTeacher(path: path) }

/// Builds TrainingSettings through the manifest, as users do.
enum TrainingSettingsProbe {
  static func make(every: Int, order: String) -> TrainingSettings {
    var json = toyManifestJSON(output: "/tmp/unused")
    try! ManifestOverride(parsing: "training.generatorEvery=\(every)").apply(to: &json)
    try! ManifestOverride(parsing: "training.updateOrder=\(order)").apply(to: &json)
    return try! Manifest.decode(
      json, source: "m", baseDirectory: "/tmp", fallbackName: "m", registry: .standard()
    ).training
  }
}

@Suite struct CheckpointFailureTests {
  @Test func aFailedCheckpointWriteKeepsThePreviousOne() throws {
    let output = temporaryFolder() + "/run"
    let json = toyManifestJSON(steps: 30, output: output)
    let registry = ComponentRegistry.standard()
    let manifest = try Manifest.decode(json, source: "m", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
    let folder = RunFolder(path: manifest.output)
    _ = try folder.prepare(for: manifest.resolvedJSON, mode: .fresh)
    let trainer = Trainer(
      pipeline: try AssembledPipeline.assemble(manifest, registry: registry), folder: folder,
      progress: ProgressReporter(style: .silent))
    // The second checkpoint hits a full disk half way: a partial file, then ENOSPC.
    trainer.checkpoints.writer = { store, step, tensors, keep in
      if step < 20 { return try store.write(step: step, tensors: tensors, keep: keep) }
      let partial = store.folder + "/.step-00000020.partial"
      try FileManager.default.createDirectory(atPath: partial, withIntermediateDirectories: true)
      try Data(count: 100).write(to: URL(fileURLWithPath: partial + "/state.safetensors"))
      try? FileManager.default.removeItem(atPath: partial)
      throw DistillError.io(path: partial, reason: "No space left on device")
    }
    #expect {
      try trainer.run(resumedFrom: nil, interruptible: false)
    } throws: { error in
      guard case RunFailure.writeFailed(_, let step, let last)? = error as? RunFailure else { return false }
      return step == 20 && last == 10 && "\(error)".contains("step 10")
        && (error as! RunFailure).description(naming: { "<\($0)>" }).contains("run again with <resume>")
    }
    #expect(folder.checkpoints.steps() == [10])
    let contents = try FileManager.default.contentsOfDirectory(atPath: folder.checkpoints.folder)
    #expect(contents == ["step-00000010"])
    // The surviving checkpoint resumes.
    try train(toyManifestJSON(steps: 30, output: output), mode: .resume)
    #expect(folder.checkpoints.steps().last == 30)
  }
}
