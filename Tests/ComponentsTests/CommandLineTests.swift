import DistillCore
import DistillPipeline
import DistillTestSupport
import Foundation
import Testing

/// The `pipeline` executable as a user runs it: exit codes, messages, signals, a full disk.
@Suite(.serialized) struct CommandLineTests {
  @Test func theExecutableIsBuiltBesideTheTests() {
    #expect(FileManager.default.isExecutableFile(atPath: pipelineExecutable().path), "\(pipelineExecutable().path)")
  }

  @Test func validateListsEveryProblemAndExitsWith2() throws {
    let folder = temporaryFolder()
    var json = toyManifestJSON(output: folder + "/run")
    try ManifestOverride(parsing: "losses[0].weight=\"high\"").apply(to: &json)
    try ManifestOverride(parsing: "training.stepz=3").apply(to: &json)
    let path = writeManifest(json, in: folder)
    let result = try runPipeline(["validate", path])
    #expect(result.status == 2)
    #expect(result.error.contains("2 problems"))
    #expect(result.error.contains("losses[0].weight: expected a number in [0, 1000000], found \"high\""))
    #expect(result.error.contains("training.stepz: unknown parameter of \"training\" (did you mean \"steps\"?)"))
    let good = try runPipeline(["validate", writeManifest(toyManifestJSON(output: folder + "/run"), in: folder, name: "ok.json")])
    #expect(good.status == 0 && good.output.contains("valid"))
    let malformed = folder + "/bad.json"
    try Data("{\"seed\": }".utf8).write(to: URL(fileURLWithPath: malformed))
    let bad = try runPipeline(["run", malformed])
    #expect(bad.status == 2 && bad.error.contains("bad.json") && bad.error.contains("line 1"))
    let missing = try runPipeline(["run", folder + "/nope.json"])
    #expect(missing.status == 2 && missing.error.contains("no such manifest file"))
    let flag = try runPipeline(["run", path, "--set", "training.steps"])
    #expect(flag.status == 2 && flag.error.contains("PATH=VALUE"))
  }

  /// `pipeline validate` accepts every manifest shipped in Templates/manifests (each is built,
  /// as `run` would build it, without training).
  @Test func everyTemplateManifestValidates() throws {
    let folder = (PipelineRun.templatePath("default.json") as NSString).deletingLastPathComponent
    let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }.sorted()
    #expect(names.contains("progressive-distillation.json") && names.contains("consistency-distillation.json"))
    // Manifests that name another run's output get it made first, in two steps. The shapes
    // chain's two manifests need a classifier, a UNet teacher and pairs: ShapesChainTests runs them
    // (FashionChainTests the Fashion-MNIST chain's, TextToImageChainTests the text-to-image
    // chain's teacher and student).
    let work = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: work) }
    let toyTeacher = try runPipeline([
      "run", (folder as NSString).appendingPathComponent("train-teacher-toy-x0.json"), "--set", "training.steps=2",
      "--set", "evaluation.every=2", "--set", "evaluation.samples=16", "--output", work + "/toy-x0", "--quiet",
    ])
    #expect(toyTeacher.status == 0, "\(toyTeacher.error)")
    let overrides = [
      "dmd2.json": ["--set", "teacher.path=\(work)/toy-x0/denoiser"],
      "add.json": ["--set", "teacher.path=\(work)/toy-x0/denoiser"],
    ]
    let chain: Set = [
      "shapes-teacher.json", "shapes-student.json", "fashion-teacher.json", "fashion-student.json", "t2i-teacher.json",
      "t2i-student.json",
    ]
    #expect(chain.isSubset(of: names))
    for name in names where !chain.contains(name) {
      let result = try runPipeline(
        ["validate", (folder as NSString).appendingPathComponent(name)] + (overrides[name] ?? []))
      #expect(result.status == 0 && result.output.contains("valid"), "\(name): \(result.error)")
    }
  }

  @Test func runThenSampleWritesAGridAndSafetensors() throws {
    let folder = temporaryFolder()
    let path = writeManifest(toyManifestJSON(steps: 10, output: folder + "/run"), in: folder)
    let run = try runPipeline(["run", path, "--quiet"])
    #expect(run.status == 0, "\(run.error)")
    let again = try runPipeline(["run", path, "--quiet"])
    #expect(again.status == 2 && again.error.contains("--resume"))
    let png = try runPipeline(["sample", "--run", folder + "/run", "--count", "100", "--out", folder + "/s.png"])
    #expect(png.status == 0, "\(png.error)")
    #expect(FileManager.default.fileExists(atPath: folder + "/s.png"))
    let st = try runPipeline(["sample", "--run", folder + "/run", "--count", "5", "--seed", "3", "--out", folder + "/s.safetensors"])
    #expect(st.status == 0, "\(st.error)")
    let samples = try SafetensorsFile.read(contentsOf: folder + "/s.safetensors").tensor("samples")
    #expect(samples.shape == [5, 2] && samples.scalars.allSatisfy(\.isFinite))
    let noRun = try runPipeline(["sample", "--run", temporaryFolder(), "--count", "5", "--out", folder + "/x.png"])
    #expect(noRun.status == 2 && noRun.error.contains("not a run folder"))
  }

  @Test func sigintFinishesTheStepWritesACheckpointAndResumes() throws {
    let folder = temporaryFolder()
    let path = writeManifest(toyManifestJSON(steps: 1_000_000, output: folder + "/run"), in: folder)
    let result = try runPipeline(["run", path]) { process in
      // Wait until training is under way (the first metrics line), then interrupt.
      let deadline = Date().addingTimeInterval(60)
      while Date() < deadline && (FileManager.default.contents(atPath: folder + "/run/metrics.jsonl")?.count ?? 0) == 0 {
        usleep(20_000)
      }
      kill(process.processIdentifier, SIGINT)
      // Never hang the suite: a run that ignores the signal is killed (and the test fails).
      let limit = Date().addingTimeInterval(60)
      while process.isRunning && Date() < limit { usleep(20_000) }
      if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
    #expect(result.status == 130, "\(result.error)")
    guard let range = result.error.range(of: #"interrupted after step (\d+)"#, options: .regularExpression) else {
      Issue.record("no interrupt message in: \(result.error)")
      return
    }
    let step = Int(result.error[range].split(separator: " ").last!)!
    #expect(RunFolder(path: folder + "/run").checkpoints.steps().last == step)
    #expect(result.error.contains("--resume"))
    let resumed = try runPipeline(["run", path, "--resume", "--quiet", "--set", "training.steps=\(step + 5)"])
    #expect(resumed.status == 0, "\(resumed.error)")
    #expect(FileManager.default.fileExists(atPath: folder + "/run/generator.safetensors"))
  }

  @Test func aFullDiskDuringACheckpointExitsWith1AndLeavesNoPartialCheckpoint() throws {
    let folder = temporaryFolder()
    var json = toyManifestJSON(steps: 20, output: folder + "/run")
    try ManifestOverride(parsing: "generator.width=96").apply(to: &json)
    let path = writeManifest(json, in: folder)
    // Files may grow to 48 KiB: the manifest, logs and plots fit, a checkpoint does not.
    let result = try runChildProcess(
      URL(fileURLWithPath: "/bin/bash"),
      ["-c", "ulimit -f 48; exec \"$0\" run \"$1\" --quiet", pipelineExecutable().path, path])
    let message = result.error
    #expect(result.status == 1, "\(message)")
    #expect(message.contains("writing failed at step 10") && message.contains("File too large"))
    let checkpoints = (try? FileManager.default.contentsOfDirectory(atPath: folder + "/run/checkpoints")) ?? []
    #expect(checkpoints.isEmpty, "no partial checkpoint: \(checkpoints)")
  }

  @Test func componentsAndSchemaDescribeTheRegistry() throws {
    let list = try runPipeline(["components", "--kind", "loss"])
    #expect(list.status == 0)
    #expect(list.output.contains("distribution-matching: DMD's distribution-matching"))
    #expect(list.output.contains("timestepRange (an array of 2 numbers; default [0.02,0.98])"))
    let bad = try runPipeline(["components", "--kind", "losses"])
    #expect(bad.status == 2)
    let schema = try runPipeline(["schema"])
    #expect(schema.status == 0)
    let parsed = try JSONValue.parse(Data(schema.output.utf8), source: "schema")
    guard case .object(let object) = parsed, case .object(let defs)? = object["$defs"] else {
      Issue.record("no $defs")
      return
    }
    #expect(defs["loss"] != nil && defs["teacher"] != nil && defs["training"] != nil)
  }
}
