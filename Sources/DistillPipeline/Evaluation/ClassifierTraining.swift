import DistillCore
import DistillNN

/// Trains an ``ImageClassifier`` on a labelled data source, for `pipeline train-classifier`.
///
/// A finite source (an image folder, a tensor file) is split once: `heldOut` samples (at most
/// a fifth of the set) are kept apart and the rest are drawn uniformly for training. An
/// endless source (`shapes`) gives its held-out samples from a stream of their own. The
/// classes' true masses (``TrainedClassifier/classPriors``) are the label frequencies of the
/// whole finite set, or of every label drawn from an endless one.
public enum ClassifierTraining {
  public struct Settings: Sendable {
    public var steps: Int
    public var batchSize: Int
    public var learningRate: Float
    public var heldOut: Int
    public var seed: UInt64
    public var width: Int
    public var features: Int

    public init(
      steps: Int = 600, batchSize: Int = 64, learningRate: Float = 1e-3, heldOut: Int = 1000, seed: UInt64 = 0,
      width: Int = 16, features: Int = 64
    ) {
      self.steps = steps
      self.batchSize = batchSize
      self.learningRate = learningRate
      self.heldOut = heldOut
      self.seed = seed
      self.width = width
      self.features = features
    }
  }

  /// Trains a classifier on `data` and measures its held-out accuracy.
  ///
  /// - Parameters:
  ///   - dataEntry: the data entry, recorded in `classifier.json` under `training`.
  ///   - location: what names the data in errors (a flag or a JSON path).
  ///   - progress: called every 50 steps and at the end with the step and the mean training
  ///     loss since the last call.
  /// - Throws: ``DistillError`` when the source has no labels, its samples are not images
  ///   `[C, H, W]`, or it holds too few samples to hold some out.
  public static func train(
    on data: any DataSource, settings: Settings, dataEntry: JSONValue = .null, location: String = "data",
    progress: (Int, Double) -> Void = { _, _ in }
  ) throws -> TrainedClassifier {
    guard let names = data.labelNames, !names.isEmpty else {
      throw DistillError.invalidValue(
        location: location,
        expected: "a data source with class labels (shapes; image-folder with \"labels\": true; tensors with \"labels\")",
        found: "a source without labels")
    }
    let shape = data.sampleShape
    guard shape.count == 3, shape[1] >= 2, shape[2] >= 2 else {
      throw DistillError.invalidValue(location: location, expected: "images [C, H, W] of sides >= 2", found: "samples of shape \(shape)")
    }
    guard settings.steps >= 1, settings.batchSize >= 1, settings.heldOut >= 1 else {
      throw DistillError.invalidValue(
        location: "classifier training", expected: "steps, batch size and held-out count of at least 1",
        found: "\(settings.steps), \(settings.batchSize), \(settings.heldOut)")
    }
    let k = names.count
    let root = RandomGenerator(seed: settings.seed)
    var drawRNG = root.fork(1)
    var counts = [Int](repeating: 0, count: k)
    func count(_ labels: [Int]) throws {
      for label in labels {
        guard (0..<k).contains(label) else {
          throw DistillError.invalidValue(location: location, expected: "labels in 0..<\(k)", found: String(label))
        }
        counts[label] += 1
      }
    }

    // The held-out set, and how a training batch is drawn.
    let heldOut: Batch
    let nextBatch: () throws -> Batch
    if let finite = data as? any FiniteDataSource {
      guard finite.count >= 5 else {
        throw DistillError.invalidValue(
          location: location, expected: "at least 5 samples (a fifth is held out)", found: "\(finite.count)")
      }
      var order = Array(0..<finite.count)
      for i in stride(from: order.count - 1, to: 0, by: -1) {
        order.swapAt(i, drawRNG.integers(count: 1, in: 0..<(i + 1))[0])
      }
      let held = min(settings.heldOut, finite.count / 5)
      let heldIndices = Array(order.prefix(held))
      let trainIndices = Array(order.dropFirst(held))
      heldOut = finite.rows(heldIndices)
      try count(finite.rows(Array(0..<finite.count)).labels ?? [])
      var trainRNG = root.fork(2)
      nextBatch = {
        finite.rows(trainRNG.integers(count: settings.batchSize, in: 0..<trainIndices.count).map { trainIndices[$0] })
      }
    } else {
      heldOut = try data.next(settings.heldOut, using: &drawRNG)
      try count(heldOut.labels ?? [])
      var trainRNG = root.fork(2)
      nextBatch = {
        let batch = try data.next(settings.batchSize, using: &trainRNG)
        try count(batch.labels ?? [])
        return batch
      }
    }

    var initRNG = root.fork(3)
    let network = ImageClassifier(
      ImageClassifierConfig(inputShape: shape, classes: k, width: settings.width, features: settings.features),
      using: &initRNG)
    network.train()
    let optimizer = Adam(network.namedParameters(), learningRate: settings.learningRate)
    var lossSum = 0.0
    var lossCount = 0
    for step in 1...settings.steps {
      let batch = try nextBatch()
      guard let samples = batch.samples, let labels = batch.labels else {
        throw DistillError.invalidValue(location: location, expected: "batches of samples with labels", found: "a batch without them")
      }
      optimizer.zeroGrad()
      let loss = ImageClassifier.crossEntropy(network(samples), labels: labels)
      loss.backward()
      optimizer.step()
      let value = Double(loss.item)
      guard value.isFinite else {
        throw DistillError.invalidValue(
          location: "classifier training", expected: "a finite loss", found: "\(value) at step \(step) (lower the learning rate)")
      }
      lossSum += value
      lossCount += 1
      if step % 50 == 0 || step == settings.steps {
        progress(step, lossSum / Double(lossCount))
        lossSum = 0
        lossCount = 0
      }
    }
    network.eval()

    let total = Double(counts.reduce(0, +))
    let priors = counts.map { total > 0 ? Double($0) / total : 1 / Double(k) }
    let training: JSONValue = .object([
      "data": dataEntry, "steps": .number(Double(settings.steps)), "batchSize": .number(Double(settings.batchSize)),
      "learningRate": .number(Double("\(settings.learningRate)") ?? Double(settings.learningRate)), "seed": .number(Double(settings.seed)),
    ])
    let classifier = TrainedClassifier(
      network: network, classNames: names, classPriors: priors, heldOutAccuracy: nil, heldOutSamples: nil,
      training: training)
    guard let heldSamples = heldOut.samples, let heldLabels = heldOut.labels, !heldLabels.isEmpty else {
      return classifier
    }
    let predicted = classifier.predictions(heldSamples)
    let correct = zip(predicted, heldLabels).filter { $0 == $1 }.count
    return TrainedClassifier(
      network: network, classNames: names, classPriors: priors,
      heldOutAccuracy: Double(correct) / Double(heldLabels.count), heldOutSamples: heldLabels.count, training: training)
  }
}
