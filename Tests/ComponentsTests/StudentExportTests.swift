import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillNN
import DistillTestSupport
import Foundation
import Testing

@testable import DistillPipeline

/// A UNet denoiser student on 8x8 shapes, trained for two steps (the weights only need to be
/// someone's).
func unetStudentJSON(
  output: String, steps: Int, stepping: String = "ddim", prediction: String = "v_prediction", generatorExtra: String = ""
)
  -> JSONValue
{
  let text = """
    {"name": "student", "seed": 3, "schedule": {"type": "ddpm", "prediction": "\(prediction)"},
     "data": {"type": "shapes", "size": 8, "classes": 2},
     "generator": {"type": "denoiser", "init": "new", "steps": \(steps), "stepping": "\(stepping)"\(generatorExtra),
       "network": {"type": "unet2d", "config": {"sample_size": 8, "in_channels": 3, "out_channels": 3,
         "block_out_channels": [8, 16], "layers_per_block": 1, "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
         "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 4, "attention_head_dim": 8}}},
     "losses": [{"type": "denoising"}],
     "training": {"steps": 2, "batchSize": 2, "checkpointEvery": 2},
     "evaluation": {"every": 2, "samples": 4, "gridSize": 4},
     "output": \(JSONValue.quoted(output))}
    """
  return try! JSONValue.parse(Data(text.utf8), source: "student")
}

@Suite struct StudentExportTests {
  /// An ε student on images clips x̂₀ (docs/teachers.md), and so does its export; one step of
  /// it starts at t = 499, which the export writes as diffusers' one-step "leading" grid offset
  /// to 499.
  @Test(arguments: [1, 4], [Prediction.vPrediction, .epsilon])
  func anExportedStudentSamplesAsTheRunDoes(steps: Int, prediction: Prediction) throws {
    let run = temporaryFolder() + "/run"
    let trainer = try train(unetStudentJSON(output: run, steps: steps, prediction: prediction.rawValue))
    let out = temporaryFolder() + "/student"
    let summary = try StudentExport.export(run: run, to: out)
    let belowT = steps == 1 && prediction == .epsilon
    #expect(summary.timesteps == (belowT ? [499] : trailingTimesteps(steps: steps, trainSteps: 1000)))
    // The folder is a diffusers UNet2DModel with a DDIMScheduler, read back by our own loader.
    let loaded = try UNetDenoiser.load(diffusersFolder: out)
    #expect(loaded.prediction == prediction && loaded.scheduleSource.hasSuffix("scheduler_config.json"))
    let scheduler = try JSONValue.parse(
      try Data(contentsOf: URL(fileURLWithPath: out + "/scheduler_config.json")), source: "scheduler_config.json")
    guard case .object(let keys) = scheduler else { Issue.record("scheduler_config.json"); return }
    #expect(keys["clip_sample"] == .bool(prediction == .epsilon))
    #expect(keys["timestep_spacing"] == .string(belowT ? "leading" : "trailing"))
    #expect(keys["steps_offset"] == .number(belowT ? 499 : 0))
    let weights = try SafetensorsFile.read(contentsOf: out + "/diffusion_pytorch_model.safetensors").tensors()
    for (name, parameter) in trainer.pipeline.generator.module.namedParameters() {
      #expect(weights[name]?.scalars == parameter.value.scalars, "\(name)")
    }
    let exported = try StudentExport.sample(folder: out, count: 5, seed: 11)
    let original = try trainer.recorder.withEvaluationWeights {
      RunRecorder.generate(trainer.pipeline.generator, count: 5, seed: 11, batchSize: 64)
    }
    #expect(exported.shape == [5, 3, 8, 8])
    let difference = zip(exported.scalars, original.scalars).map { abs($0 - $1) }.max() ?? .infinity
    // One step is the same arithmetic; several recompute ε̂ from the network's output rather
    // than from x̂₀, which differs in the last bits.
    #expect(steps == 1 ? difference == 0 : difference < 1e-5, "\(difference)")
  }

  /// A class-conditional student (classes of the shapes data, a null class for label dropout)
  /// leaves with its classes: the folder names its null class, and `generate --class` samples
  /// what the run's generator samples for that class.
  @Test func aClassConditionalStudentExportsWithItsClasses() throws {
    let run = temporaryFolder() + "/run"
    var json = unetStudentJSON(output: run, steps: 1)
    try ManifestOverride(parsing: "generator.network.config.num_class_embeds=3").apply(to: &json)
    try ManifestOverride(parsing: "generator.network.nullClass=2").apply(to: &json)
    let trainer = try train(json)
    let out = temporaryFolder() + "/student"
    try StudentExport.export(run: run, to: out)
    let loaded = try UNetDenoiser.load(diffusersFolder: out)
    #expect(loaded.classes == ClassConditioning(count: 2, null: 2))
    let generator = trainer.pipeline.generator
    var rng = RandomGenerator(seed: 4)
    let noise = Tensor.normal([4, 3, 8, 8], using: &rng)
    for label in [0, 1] {
      let exported = try StudentExport.sample(folder: out, count: 0, seed: 0, noise: noise, classLabel: label)
      let original = try trainer.recorder.withEvaluationWeights {
        withoutGradients { generator(noise, condition: Condition(labels: [label, label, label, label])) }
      }
      #expect(zip(exported.scalars, original.scalars).allSatisfy { $0 == $1 }, "class \(label)")
    }
    #expect(throws: SamplingSettingError.self) {
      _ = try StudentExport.sample(folder: out, count: 2, seed: 0, classLabel: 2)
    }
  }

  @Test func studentsDiffusersCannotTakeAreRefusedNamingTheKey() throws {
    let mlpRun = temporaryFolder() + "/run"
    try train(toyManifestJSON(steps: 2, output: mlpRun))
    let notUNet = try #require(throws: DistillError.self) { try StudentExport.export(run: mlpRun, to: temporaryFolder() + "/s") }
    #expect("\(notUNet)".contains("generator.json: type") && "\(notUNet)".contains("\"mlp\""))
    let renoise = temporaryFolder() + "/run"
    try train(unetStudentJSON(output: renoise, steps: 2, stepping: "renoise"))
    let out = temporaryFolder() + "/s"
    let steps = try #require(throws: DistillError.self) { try StudentExport.export(run: renoise, to: out) }
    #expect("\(steps)".contains("generator.timesteps") && "\(steps)".contains("renoise"))
    #expect(!FileManager.default.fileExists(atPath: out), "nothing written")
    let notARun = try #require(throws: DistillError.self) { try StudentExport.export(run: temporaryFolder(), to: out) }
    #expect("\(notARun)".contains("no generator.json"))
  }

  @Test func anOutputFolderHoldingFilesIsNeverReplaced() throws {
    let run = temporaryFolder() + "/run"
    try train(unetStudentJSON(output: run, steps: 1))
    let out = temporaryFolder()
    try Data("keep".utf8).write(to: URL(fileURLWithPath: out + "/notes.txt"))
    #expect(throws: DistillError.self) { try StudentExport.export(run: run, to: out) }
    #expect(try FileManager.default.contentsOfDirectory(atPath: out) == ["notes.txt"])
  }

  @Test func theCommandsExportAndGenerateAndRefuseWithTwo() throws {
    let run = temporaryFolder() + "/run"
    try train(unetStudentJSON(output: run, steps: 2))
    let out = temporaryFolder() + "/student"
    let export = try runPipeline(["export", "--run", run, "--out", out])
    #expect(export.status == 0, "\(export.error)")
    let samples = temporaryFolder() + "/s.safetensors"
    let generate = try runPipeline(["generate", "--student", out, "--count", "3", "--seed", "2", "--out", samples])
    #expect(generate.status == 0, "\(generate.error)")
    #expect(try SafetensorsFile.read(contentsOf: samples).tensor("samples").shape == [3, 3, 8, 8])
    let again = try runPipeline(["export", "--run", run, "--out", out])
    #expect(again.status == 2 && again.error.contains("expected a new or empty folder"))
    let missing = try runPipeline(["generate", "--student", run, "--count", "3", "--out", samples])
    #expect(missing.status == 2 && missing.error.contains("config.json"))
  }
}
