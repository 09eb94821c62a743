import DistillCore
import DistillDiffusion
import DistillNN
import Foundation

/// An ``ImageClassifier`` trained on a dataset by `pipeline train-classifier`, with what the
/// evaluation metrics need to know about it: the class names, each class's share of the data
/// (its true mass, for mode coverage) and its held-out accuracy.
///
/// On disk it is a folder of two files:
/// - `classifier.json`: `{"format": "distillery-classifier", "version": 1, "inputShape":
///   [3, 16, 16], "classes": 4, "width": 16, "features": 64, "classNames": [...],
///   "classPriors": [...], "heldOutAccuracy": 0.998, "heldOutSamples": 1000, "training": {...}}`;
/// - `classifier.safetensors`: the weights (`conv0.weight`, ..., `fc.weight`, `head.bias`).
public final class TrainedClassifier {
  public static let format = "distillery-classifier"
  public static let version = 1
  public static let configFileName = "classifier.json"
  public static let weightsFileName = "classifier.safetensors"

  public let network: ImageClassifier
  public let classNames: [String]
  /// Each class's share of the training data, summing to 1.
  public let classPriors: [Double]
  public let heldOutAccuracy: Double?
  public let heldOutSamples: Int?
  /// How it was trained (data entry, steps, seed), as recorded; informational.
  public let training: JSONValue
  /// Where it was loaded from, for messages.
  public private(set) var source: String

  public var config: ImageClassifierConfig { network.config }

  public init(
    network: ImageClassifier, classNames: [String], classPriors: [Double], heldOutAccuracy: Double?,
    heldOutSamples: Int?, training: JSONValue = .object([:]), source: String = "a trained classifier"
  ) {
    precondition(classNames.count == network.config.classes && classPriors.count == network.config.classes)
    self.network = network
    self.classNames = classNames
    self.classPriors = classPriors
    self.heldOutAccuracy = heldOutAccuracy
    self.heldOutSamples = heldOutSamples
    self.training = training
    self.source = source
    network.eval()
  }

  // MARK: Inference

  /// The penultimate features of `samples` (`[N] + inputShape`), `[N, features]`, computed in
  /// batches without gradients.
  public func features(_ samples: Tensor, batchSize: Int = 256) -> Tensor {
    batched(samples, batchSize: batchSize) { network.features($0) }
  }

  /// The class probabilities of `samples`, `[N, classes]`.
  public func probabilities(_ samples: Tensor, batchSize: Int = 256) -> Tensor {
    batched(samples, batchSize: batchSize) { network($0).softmax(axis: 1) }
  }

  /// The most probable class of each sample.
  public func predictions(_ samples: Tensor) -> [Int] {
    let p = probabilities(samples)
    let k = config.classes
    let values = p.scalars
    return (0..<p.shape[0]).map { i in (0..<k).max { values[i * k + $0] < values[i * k + $1] }! }
  }

  private func batched(_ samples: Tensor, batchSize: Int, _ body: (Tensor) -> Tensor) -> Tensor {
    let n = samples.shape[0]
    var parts: [Tensor] = []
    for start in stride(from: 0, to: n, by: batchSize) {
      parts.append(withoutGradients { body(samples.sliced(axis: 0, start..<min(n, start + batchSize))) }.detached())
    }
    return parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0)
  }

  /// Throws unless one sample of `shape` is what the classifier takes; `location` names the
  /// manifest entry that uses it.
  public func requireInput(_ shape: [Int]?, location: String) throws {
    guard let shape, shape == config.inputShape else {
      throw DistillError.invalidValue(
        location: location,
        expected: "samples of the classifier's input shape \(config.inputShape) (\(source))",
        found: shape.map { "samples of shape \($0)" } ?? "no data or teacher that fixes the sample shape")
    }
  }

  // MARK: Files

  /// Writes `classifier.json` and `classifier.safetensors` into `folder` (created if needed).
  public func save(folder: String) throws {
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch {
      throw DistillError.io(path: folder, reason: "cannot create the folder: \(error.localizedDescription)")
    }
    let c = config
    var object: [String: JSONValue] = [
      "format": .string(Self.format), "version": .number(Double(Self.version)),
      "inputShape": .array(c.inputShape.map { .number(Double($0)) }), "classes": .number(Double(c.classes)),
      "width": .number(Double(c.width)), "features": .number(Double(c.features)),
      "classNames": .array(classNames.map(JSONValue.string)), "classPriors": .array(classPriors.map(JSONValue.number)),
      "training": training,
    ]
    if let heldOutAccuracy { object["heldOutAccuracy"] = .number(heldOutAccuracy) }
    if let heldOutSamples { object["heldOutSamples"] = .number(Double(heldOutSamples)) }
    try SafetensorsFile.write(
      network.stateDict(), metadata: ["format": "pt", "distillery": "classifier"],
      to: (folder as NSString).appendingPathComponent(Self.weightsFileName))
    try AtomicFileWriter.write(
      Array((JSONValue.object(object).text() + "\n").utf8),
      to: (folder as NSString).appendingPathComponent(Self.configFileName))
  }

  /// Loads a classifier folder written by ``save(folder:)``; `path` is the folder or its
  /// `classifier.json`.
  ///
  /// - Throws: ``DistillError`` naming the file and key: a missing file, malformed JSON, a
  ///   missing, wrong or unknown key, or weights that do not fit (every missing, unexpected and
  ///   mis-shaped tensor listed).
  public static func load(path: String) throws -> TrainedClassifier {
    var isFolder: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
    guard exists else { throw DistillError.io(path: path, reason: "no such classifier folder or file") }
    let folder = isFolder.boolValue ? path : (path as NSString).deletingLastPathComponent
    let configPath = isFolder.boolValue ? (path as NSString).appendingPathComponent(configFileName) : path
    var r = try JSONObjectReader(
      file: configPath, missing: "cannot read the classifier config (write one with `pipeline train-classifier`)")
    func required<T>(_ key: String, _ value: T?, _ expected: String) throws -> T {
      guard let value else { throw DistillError.invalidValue(location: "\(configPath): \(key)", expected: expected, found: "nothing") }
      return value
    }
    let format = try r.string("format")
    let version = try r.int("version")
    let inputShape = try r.intArray("inputShape")
    let classes = try r.int("classes")
    let width = try r.int("width")
    let features = try r.int("features")
    let names = try r.stringArray("classNames")
    let priorsValue = r.value("classPriors")
    let accuracy = try r.double("heldOutAccuracy")
    let heldOut = try r.int("heldOutSamples")
    let training = r.value("training") ?? .object([:])
    try r.rejectUnknownKeys()
    try r.requireFormat(format, Self.format, version: version, Self.version)
    let shape = try required("inputShape", inputShape, "[C, H, W]")
    guard shape.count == 3, shape.allSatisfy({ (1...4096).contains($0) }) else {
      throw DistillError.invalidValue(location: "\(configPath): inputShape", expected: "[C, H, W] of sides in 1...4096", found: "\(shape)")
    }
    let k = try required("classes", classes, "an integer >= 1")
    guard (1...100_000).contains(k) else {
      throw DistillError.invalidValue(location: "\(configPath): classes", expected: "an integer in 1...100000", found: String(k))
    }
    let w = try required("width", width, "an integer")
    let f = try required("features", features, "an integer")
    guard (1...1024).contains(w) else {
      throw DistillError.invalidValue(location: "\(configPath): width", expected: "an integer in 1...1024", found: String(w))
    }
    guard (1...65536).contains(f) else {
      throw DistillError.invalidValue(location: "\(configPath): features", expected: "an integer in 1...65536", found: String(f))
    }
    let classNames = try required("classNames", names, "an array of \(k) class names")
    guard classNames.count == k else {
      throw DistillError.invalidValue(
        location: "\(configPath): classNames", expected: "\(k) names (classes)", found: "\(classNames.count)")
    }
    var priors: [Double] = []
    if case .array(let items)? = priorsValue {
      priors = items.compactMap { if case .number(let n) = $0, n.isFinite, n >= 0 { return n } else { return nil } }
    }
    guard priors.count == k, priors.count == (priorsValue.flatMap { if case .array(let a) = $0 { return a.count } else { return nil } } ?? -1),
      abs(priors.reduce(0, +) - 1) < 1e-3
    else {
      throw DistillError.invalidValue(
        location: "\(configPath): classPriors", expected: "\(k) numbers >= 0 summing to 1",
        found: priorsValue?.summary ?? "nothing")
    }
    let config = ImageClassifierConfig(inputShape: shape, classes: k, width: w, features: f)
    let (h, wide) = config.pooledSize
    guard h >= 1, wide >= 1 else {
      throw DistillError.invalidValue(
        location: "\(configPath): inputShape", expected: "sides of at least 2 (the classifier pools them)", found: "\(shape)")
    }
    let weightsPath = (folder as NSString).appendingPathComponent(weightsFileName)
    guard FileManager.default.fileExists(atPath: weightsPath) else {
      throw DistillError.io(path: weightsPath, reason: "no classifier weights beside \(configFileName)")
    }
    // The largest tensor, checked against the header before the network is allocated, so
    // that a config of huge sizes cannot allocate more than the weights file holds.
    let fcShape = [f, config.channels(config.stages - 1) * h * wide]
    let header = try SafetensorsFile.read(contentsOf: weightsPath)
    guard let info = header.info("fc.weight"), info.shape == fcShape else {
      throw DistillError.malformed(
        path: weightsPath,
        detail: "'fc.weight': \(header.info("fc.weight").map { "shape \($0.shape)" } ?? "missing") in the weights, the configured classifier expects \(fcShape)")
    }
    var rng = RandomGenerator(seed: 0)
    let network = ImageClassifier(config, using: &rng)
    try DenoiserFolder.loadWeightsChecked(network, path: weightsPath)
    return TrainedClassifier(
      network: network, classNames: classNames, classPriors: priors, heldOutAccuracy: accuracy, heldOutSamples: heldOut,
      training: training, source: configPath)
  }
}
