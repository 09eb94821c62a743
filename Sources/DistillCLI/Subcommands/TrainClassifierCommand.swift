import ArgumentParser
import DistillCore
import DistillPipeline
import Foundation

/// `pipeline train-classifier`: a small CNN classifier trained on a labelled dataset, for the
/// metrics that compare features or classes (`feature-distances` with `"extractor":
/// "classifier"`, `mode-coverage` with `"classifier"`).
struct TrainClassifierCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train-classifier",
    abstract: "Train a classifier on a labelled data source, for FD_classifier and mode coverage by class.",
    discussion: """
      --data is a data entry as inline JSON ('{"type": "shapes", "size": 16, "classes": 4}') or a \
      JSON file holding a data entry or a whole manifest (its "data" entry is used); relative \
      paths resolve against the file's folder, or the working directory for inline JSON. The \
      source must have labels (shapes; image-folder with "labels": true; tensors with "labels"). \
      A finite source holds out --held-out samples (at most a fifth of it); shapes draws them \
      from a stream of their own. Writes DIR/classifier.json and DIR/classifier.safetensors and \
      prints the held-out accuracy. Exit status 2 for bad input, 1 otherwise.
      """)

  @Option(help: "The data: an inline JSON data entry, or a JSON file (a data entry or a manifest).")
  var data: String

  @Option(help: "The output folder.")
  var out: String

  @Option(help: "Training steps.")
  var steps: Int = 600

  @Option(name: .customLong("batch-size"), help: "Images per step.")
  var batchSize: Int = 64

  @Option(name: .customLong("learning-rate"), help: "Adam's learning rate.")
  var learningRate: Float = 1e-3

  @Option(name: .customLong("held-out"), help: "Held-out samples for the accuracy.")
  var heldOut: Int = 1000

  @Option(help: "Seed of the initialisation, the split and the draws.")
  var seed: UInt64 = 0

  @Option(help: "Channels of the first convolution stage (later stages double it, up to 4x).")
  var width: Int = 16

  @Option(help: "Width of the penultimate layer: the features FD_classifier compares.")
  var features: Int = 64

  func validate() throws {
    for (flag, value, range) in [
      ("--steps", steps, 1...10_000_000), ("--batch-size", batchSize, 1...65_536), ("--held-out", heldOut, 1...1_000_000),
      ("--width", width, 1...256), ("--features", features, 1...4096),
    ] where !range.contains(value) {
      throw ValidationError("\(flag) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
    }
    guard learningRate > 0, learningRate.isFinite else {
      throw ValidationError("--learning-rate must be a positive number, got \(learningRate)")
    }
  }

  func run() throws {
    try runReportingErrors {
      let registry = RegistryHolder.shared.registry
      let (json, source, base) = try Self.readData(data)
      let (entry, dataSource) = try AssembledPipeline.buildData(
        json, source: source, baseDirectory: base, registry: registry)
      let settings = ClassifierTraining.Settings(
        steps: steps, batchSize: batchSize, learningRate: learningRate, heldOut: heldOut, seed: seed, width: width,
        features: features)
      let start = Date()
      let classifier = try ClassifierTraining.train(
        on: dataSource, settings: settings, dataEntry: entry.resolvedJSON, location: "--data"
      ) { step, loss in
        print(String(format: "step %d: loss %.4f", step, loss))
      }
      try classifier.save(folder: out)
      let seconds = Date().timeIntervalSince(start)
      if let accuracy = classifier.heldOutAccuracy, let count = classifier.heldOutSamples {
        print(String(format: "held-out accuracy %.4f (%d samples), %.0f s", accuracy, count, seconds))
      }
      print("wrote \((out as NSString).appendingPathComponent(TrainedClassifier.configFileName)) and \(TrainedClassifier.weightsFileName)")
    }
  }

  /// The JSON of `--data`, where it came from, and the folder its paths resolve against.
  static func readData(_ text: String) throws -> (JSONValue, String, String) {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if trimmed.hasPrefix("{") {
      return (try JSONValue.parse(Data(trimmed.utf8), source: "--data"), "--data", FileManager.default.currentDirectoryPath)
    }
    guard let contents = FileManager.default.contents(atPath: text) else {
      let exists = FileManager.default.fileExists(atPath: text)
      throw DistillError.io(path: text, reason: exists ? "cannot read the data entry" : "no such file (--data)")
    }
    let absolute = URL(fileURLWithPath: text).standardized.path
    return (try JSONValue.parse(contents, source: text), text, (absolute as NSString).deletingLastPathComponent)
  }
}
