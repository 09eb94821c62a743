import BuiltInComponents
import DistillCore
import DistillNN
import FeatureDistances
import Foundation
import ModeCoverage
import ShapesData
import TensorData
import Testing

@testable import DistillPipeline

/// A classifier trained on `shapes` (16x16): accuracy, FD_classifier and mode coverage by
/// class, and the errors of a bad classifier folder.
@Suite struct ClassifierMetricsTests {
  static func trainShapes(classes: Int = 4, steps: Int = 300) throws -> TrainedClassifier {
    try ClassifierTraining.train(
      on: ShapesSource(size: 16, classes: classes), settings: .init(steps: steps, heldOut: 500, seed: 3))
  }

  /// An evaluation context whose reference is `count` shapes drawn with seed 99.
  static func context(_ source: ShapesSource) -> EvaluationContext {
    EvaluationContext(teacher: nil, data: source) { count in
      var rng = RandomGenerator(seed: 99)
      return try source.next(count, using: &rng).samples
    }
  }

  static func shapes(_ source: ShapesSource, count: Int, seed: UInt64, dropping dropped: Int? = nil) throws -> Tensor {
    var rng = RandomGenerator(seed: seed)
    let batch = try source.next(count * 2, using: &rng)
    let keep = batch.labels!.indices.filter { batch.labels![$0] != dropped }.prefix(count)
    return batch.samples!.gatheringRows(Array(keep))
  }

  @Test func learnsShapesAndRoundTrips() throws {
    let classifier = try Self.trainShapes()
    let accuracy = try #require(classifier.heldOutAccuracy)
    #expect(accuracy >= 0.98, "held-out accuracy \(accuracy)")
    #expect(classifier.heldOutSamples == 500)
    #expect(classifier.classNames == ["red-square", "green-disc", "blue-triangle", "yellow-cross"])
    #expect(abs(classifier.classPriors.reduce(0, +) - 1) < 1e-9)
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try classifier.save(folder: folder)
    let loaded = try TrainedClassifier.load(path: folder)
    let images = try Self.shapes(ShapesSource(size: 16, classes: 4), count: 32, seed: 5)
    #expect(loaded.features(images).scalars == classifier.features(images).scalars)
    #expect(loaded.classPriors == classifier.classPriors && loaded.heldOutAccuracy == accuracy)
    // The config file itself is accepted in place of the folder.
    _ = try TrainedClassifier.load(path: folder + "/classifier.json")
  }

  @Test func finiteSourceHoldsOutAFifth() throws {
    // 200 shapes as a tensor dataset: 40 are held out, the classifier never trains on them.
    var rng = RandomGenerator(seed: 1)
    let batch = try ShapesSource(size: 16, classes: 4).next(200, using: &rng)
    let source = TensorSource(samples: batch.samples!, labels: batch.labels!)
    let classifier = try ClassifierTraining.train(on: source, settings: .init(steps: 300, heldOut: 1000, seed: 2))
    #expect(classifier.heldOutSamples == 40)
    #expect(classifier.classNames == ["0", "1", "2", "3"])
    let accuracy = try #require(classifier.heldOutAccuracy)
    #expect(accuracy >= 0.9, "held-out accuracy \(accuracy)")
  }

  @Test func featureDistanceSeparatesRealFromWrong() throws {
    let classifier = try Self.trainShapes()
    let source = ShapesSource(size: 16, classes: 4)
    let metric = FeatureDistancesMetric(extractor: "classifier", count: 400, k: 3, classifier: classifier)
    let context = Self.context(source)
    let real = try metric.evaluate(try Self.shapes(source, count: 400, seed: 7), context)
    // The same images with red and blue swapped: red squares become blue squares, a
    // combination the data never shows.
    let images = try Self.shapes(source, count: 400, seed: 7)
    let swapped = Tensor.concat(
      [images.sliced(axis: 1, 2..<3), images.sliced(axis: 1, 1..<2), images.sliced(axis: 1, 0..<1)], axis: 1)
    let wrong = try metric.evaluate(swapped, context)
    var rng = RandomGenerator(seed: 8)
    let noise = try metric.evaluate(Tensor.uniform([400, 3, 16, 16], low: -1, high: 1, using: &rng), context)
    let fd = try #require(real["FD_classifier"])
    print("FD_classifier: real \(fd), colour-swapped \(wrong["FD_classifier"]!), noise \(noise["FD_classifier"]!)")
    #expect(fd < 0.1 * wrong["FD_classifier"]! && fd < 0.1 * noise["FD_classifier"]!)
    #expect(real["precision_classifier"]! > 0.8 && real["recall_classifier"]! > 0.8)
    #expect(noise["precision_classifier"]! < 0.2)
    #expect(real["KID_classifier"]! < 0.1 * noise["KID_classifier"]!)
    #expect(real["FD_pixels"] == nil)
  }

  @Test func modeCoverageDropsWithAMissingClass() throws {
    let classifier = try Self.trainShapes()
    let source = ShapesSource(size: 16, classes: 4)
    let metric = ClassifierModeCoverageMetric(classifier: classifier, threshold: 0.5, confidence: 0.5)
    let context = Self.context(source)
    let full = try metric.evaluate(try Self.shapes(source, count: 400, seed: 11), context)
    #expect(full["mode-coverage"] == 1 && full["modes-covered"] == 4)
    let missing = try metric.evaluate(try Self.shapes(source, count: 400, seed: 11, dropping: 2), context)
    #expect(missing["mode-coverage"] == 0.75 && missing["modes-covered"] == 3)
    #expect(missing["class-fraction/blue-triangle"]! < 0.01)
    #expect(abs(missing["class-fraction/red-square"]! - 1.0 / 3) < 0.1)
    // A generator collapsed onto one class covers a quarter.
    let collapsed = try metric.evaluate(
      try Self.shapes(ShapesSource(size: 16, classes: 1), count: 400, seed: 13), context)
    #expect(collapsed["mode-coverage"] == 0.25 && collapsed["class-fraction/red-square"]! > 0.99)
  }

  @Test func badClassifierFoldersNameFileAndKey() throws {
    let classifier = try Self.trainShapes(steps: 5)
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try classifier.save(folder: folder)
    let configPath = folder + "/classifier.json"
    let original = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: configPath)), source: configPath)
    func message(_ edit: (inout [String: JSONValue]) -> Void) -> String {
      guard case .object(var object) = original else { return "" }
      edit(&object)
      try! Data(JSONValue.object(object).text().utf8).write(to: URL(fileURLWithPath: configPath))
      do {
        _ = try TrainedClassifier.load(path: folder)
        return "loaded"
      } catch {
        return "\(error)"
      }
    }
    #expect(message { $0["classes"] = nil }.contains("classifier.json: classes"))
    #expect(message { $0["features"] = .number(32) }.contains("'fc.weight'"))
    #expect(message { $0["classPriors"] = .array([.number(1)]) }.contains("classifier.json: classPriors"))
    #expect(message { $0["clases"] = .number(4) }.contains("did you mean \"classes\""))
    #expect(message { $0["format"] = .string("distillery-denoiser") }.contains("classifier.json: format"))
    _ = message { _ in }
    try FileManager.default.removeItem(atPath: folder + "/classifier.safetensors")
    #expect(message { _ in }.contains("classifier.safetensors"))
    #expect(throws: DistillError.self) { try TrainedClassifier.load(path: folder + "/nothing") }
  }

  /// The error a manifest whose only metric is `metric` is refused with at assembly.
  func assemblyError(metric: String, in folder: String) throws -> String {
    let registry = ComponentRegistry.standard(adding: [ZeroLoss.self])
    let text = """
      {"generator": {"type": "mlp"}, "losses": [{"type": "test-zero-loss-classifier"}],
       "data": {"type": "shapes", "size": 16}, "evaluation": {"metrics": [\(metric)]}}
      """
    let manifest = try Manifest.decode(
      JSONValue.parse(Data(text.utf8), source: "m"), source: folder + "/m.json", baseDirectory: folder,
      fallbackName: "m", registry: registry)
    do {
      _ = try AssembledPipeline.assemble(manifest, registry: registry)
      return "assembled"
    } catch {
      return "\(error)"
    }
  }

  @Test func manifestNamesTheMetricOfABadClassifier() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try Self.trainShapes(steps: 5).save(folder: folder + "/classifier")
    try FileManager.default.removeItem(atPath: folder + "/classifier/classifier.safetensors")
    let missing = try assemblyError(metric: #"{"type": "feature-distances", "extractor": "classifier"}"#, in: folder)
    #expect(missing.contains("evaluation.metrics[0].classifier"), "\(missing)")
    for metric in [
      #"{"type": "feature-distances", "extractor": "classifier", "classifier": "classifier"}"#,
      #"{"type": "mode-coverage", "classifier": "classifier"}"#,
    ] {
      let error = try assemblyError(metric: metric, in: folder)
      #expect(error.contains("evaluation.metrics[0]") && error.contains("classifier/classifier.safetensors"), "\(error)")
    }
  }
}

/// A loss that asks nothing of the pipeline, so that any metric entry assembles.
private final class ZeroTerm: LossTerm {
  func loss(_ context: StepContext) throws -> Tensor { Tensor([0]).sum() }
}

private enum ZeroLoss: LossComponent {
  static let id = "test-zero-loss-classifier"
  static let summary = "zero"
  static let parameters: [ParameterSpec] = []
  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm { ZeroTerm() }
}
