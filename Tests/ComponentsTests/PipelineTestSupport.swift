import BuiltInComponents
import DistillCore
import DistillPipeline
import DistillTestSupport
import Foundation

/// A small toy-DMD manifest (two modes, tiny MLPs) that trains in well under a second.
func toyManifestJSON(steps: Int = 20, output: String) -> JSONValue {
  let text = """
    {
      "name": "toy-test",
      "seed": 7,
      "teacher": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.3},
      "generator": {"type": "mlp", "width": 16, "depth": 2},
      "scores": {
        "real": {"type": "teacher"},
        "fake": {"type": "trained", "init": "new", "prediction": "sample",
                 "network": {"type": "mlp", "inputSize": 2, "width": 16, "depth": 2, "outputSize": 2},
                 "optimizer": {"type": "adam", "lr": 0.001}}
      },
      "losses": [{"type": "distribution-matching"}],
      "optimizer": {"type": "adam", "lr": 0.001},
      "training": {"steps": \(steps), "batchSize": 32, "ema": 0.9, "checkpointEvery": 10, "keepCheckpoints": 2, "logEvery": 5},
      "evaluation": {"every": 10, "samples": 64, "gridSize": 16, "metrics": ["energy-distance", "mode-coverage"]},
      "output": \(JSONValue.quoted(output))
    }
    """
  return try! JSONValue.parse(Data(text.utf8), source: "toy")
}

/// A fresh temporary folder.
func temporaryFolder(_ name: String = #function) -> String {
  let path = NSTemporaryDirectory() + "distillery-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
  try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// Writes `json` as `manifest.json` in `folder` and returns its path.
func writeManifest(_ json: JSONValue, in folder: String, name: String = "manifest.json") -> String {
  let path = (folder as NSString).appendingPathComponent(name)
  try! Data(json.text().utf8).write(to: URL(fileURLWithPath: path))
  return path
}

/// Validates, assembles and trains `json` in-process (relative paths against `baseDirectory`);
/// returns the trainer.
@discardableResult
func train(
  _ json: JSONValue, registry: ComponentRegistry = .standard(), mode: RunFolder.Mode = .fresh,
  overrides: [String] = [], source: String = "manifest.json", baseDirectory: String = NSTemporaryDirectory()
) throws -> Trainer {
  var json = json
  for text in overrides { try ManifestOverride(parsing: text).apply(to: &json) }
  let manifest = try Manifest.decode(
    json, source: source, baseDirectory: baseDirectory, fallbackName: "test", registry: registry)
  let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
  let folder = RunFolder(path: manifest.output)
  let resume = try folder.prepare(for: manifest.resolvedJSON, mode: mode)
  let trainer = Trainer(pipeline: pipeline, folder: folder, progress: ProgressReporter(style: .silent))
  try trainer.run(resumedFrom: resume, interruptible: false)
  return trainer
}

/// The `pipeline` executable built beside the test bundle.
func pipelineExecutable() -> URL {
  URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("pipeline")
}

struct ProcessResult {
  var status: Int32
  var output: String
  var error: String
}

/// Runs `scripts/NAME` of the repository with bash into `out`, the built `pipeline` as
/// `PIPELINE`, a 20-step classifier and `settings` (the script's environment variables).
func runChainScript(_ name: String, into out: String, settings: [String: String]) throws -> ProcessResult {
  let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts/\(name)").path
  var environment = ProcessInfo.processInfo.environment
  environment["PIPELINE"] = pipelineExecutable().path
  environment["CLASSIFIER_STEPS"] = "20"
  environment.merge(settings) { $1 }
  return try runPipeline([script, out], executable: URL(fileURLWithPath: "/bin/bash"), environment: environment)
}

/// Runs `executable` (the `pipeline` built beside the tests by default) with `arguments`, in
/// `directory` and with `environment` (the tests' own when nil); `whileRunning` gets the
/// process once started.
func runPipeline(
  _ arguments: [String], executable: URL = pipelineExecutable(), environment: [String: String]? = nil,
  directory: String? = nil, whileRunning: ((Process) -> Void)? = nil
) throws -> ProcessResult {
  let result = try runChildProcess(
    executable, arguments, environment: environment, directory: directory, whileRunning: whileRunning)
  return ProcessResult(status: result.status, output: result.output, error: result.error)
}
