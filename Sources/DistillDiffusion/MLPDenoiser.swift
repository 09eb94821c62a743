import DistillNN
import Foundation

/// The architecture of an ``MLPDenoiserNetwork``: the `network` object of `denoiser.json`
/// with `"type": "mlp"`.
public struct MLPDenoiserConfig: Equatable, Sendable {
  /// The values per sample `D` (a batch is `[N, D]`, or `[N, ...]` holding `D` values per sample).
  public var inputSize: Int
  public var width: Int
  /// The number of hidden layers.
  public var depth: Int
  /// The values per output sample; equal to `inputSize` for a denoiser.
  public var outputSize: Int
  /// The size of the sinusoidal timestep embedding appended to the input.
  public var timeEmbedding: Int
  public var activation: Activation
  /// The classes of a class-conditional network (0: unconditional). A table of `classes + 1`
  /// learnt vectors of size `timeEmbedding` (the last for the null class, "no class") is
  /// appended to the input as well.
  public var classes: Int

  public init(
    inputSize: Int, width: Int = 128, depth: Int = 3, outputSize: Int? = nil, timeEmbedding: Int = 16,
    activation: Activation = .silu, classes: Int = 0
  ) {
    self.inputSize = inputSize
    self.width = width
    self.depth = depth
    self.outputSize = outputSize ?? inputSize
    self.timeEmbedding = timeEmbedding
    self.activation = activation
    self.classes = classes
  }

  /// The size of the first layer's input: the sample, the time embedding and the class embedding.
  var firstLayerInput: Int { inputSize + timeEmbedding * (classes > 0 ? 2 : 1) }

  /// Checks sizes; `location` names the file and JSON path in errors.
  public func validate(location: String) throws {
    for (key, value, minimum) in [
      ("inputSize", inputSize, 1), ("width", width, 1), ("depth", depth, 1), ("outputSize", outputSize, 1),
      ("timeEmbedding", timeEmbedding, 2), ("classes", classes, 0),
    ] where value < minimum {
      throw DistillError.invalidValue(
        location: "\(location): \(key)", expected: "an integer of at least \(minimum)", found: String(value))
    }
    _ = try parameterCount(location: location)
  }

  /// The most parameters an MLP config may describe (4 GB of float32).
  public static let maximumParameterCount = 1_000_000_000

  /// The parameters of ``MLPDenoiserNetwork`` for this config, computed without building it.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` beyond ``maximumParameterCount``.
  public func parameterCount(location: String = "MLPDenoiserConfig") throws -> Int {
    // In Double so that no size overflows; exact whenever the total is within the limit.
    let (input, hidden, layers) = (Double(firstLayerInput), Double(width), Double(depth))
    let table = classes > 0 ? Double(classes + 1) * Double(timeEmbedding) : 0
    let total = table + (input * hidden + hidden) + (layers - 1) * (hidden * hidden + hidden) + (hidden * Double(outputSize) + Double(outputSize))
    guard total <= Double(Self.maximumParameterCount) else {
      throw DistillError.invalidValue(
        location: "\(location): width", expected: "an MLP of at most \(Self.maximumParameterCount) parameters",
        found: "\(total) parameters")
    }
    return Int(total)
  }

  var json: JSONValue {
    var object: [String: JSONValue] = [
      "type": .string("mlp"), "inputSize": .number(Double(inputSize)), "width": .number(Double(width)),
      "depth": .number(Double(depth)), "outputSize": .number(Double(outputSize)),
      "timeEmbedding": .number(Double(timeEmbedding)), "activation": .string(activation.rawValue),
    ]
    if classes > 0 { object["classes"] = .number(Double(classes)) }
    return .object(object)
  }

  /// Reads the fields of an `"mlp"` network object (the reader has read `type`).
  static func decode(_ r: inout JSONObjectReader) throws -> MLPDenoiserConfig {
    let inputSize = try r.int("inputSize")
    let width = try r.int("width")
    let depth = try r.int("depth")
    let outputSize = try r.int("outputSize")
    let timeEmbedding = try r.int("timeEmbedding", default: 16)
    let activation: Activation = try r.choice("activation", default: .silu)
    let classes = try r.int("classes", default: 0)
    // Unknown keys first, so that a misspelt key is named rather than reported missing.
    try r.rejectUnknownKeys()
    func required(_ key: String, _ value: Int?) throws -> Int {
      guard let value else {
        throw DistillError.invalidValue(location: "\(r.location): \(key)", expected: "an integer", found: "nothing")
      }
      return value
    }
    var config = MLPDenoiserConfig(
      inputSize: try required("inputSize", inputSize), width: try required("width", width),
      depth: try required("depth", depth), outputSize: outputSize, timeEmbedding: timeEmbedding, classes: classes)
    config.activation = activation
    try config.validate(location: r.location)
    return config
  }
}

/// An MLP on `[x, sinusoidal(t)]`: the flattened sample concatenated with a
/// `timeEmbedding`-dimensional embedding of the timestep (diffusers' `get_timestep_embedding`
/// with cos first and no frequency shift) and, for a class-conditional network, the class's
/// learnt embedding, through `depth` hidden layers. Weight keys are `mlp.0.weight`,
/// `mlp.0.bias`, `mlp.2.weight`, ... and `class_embedding.weight`.
public final class MLPDenoiserNetwork: Module {
  public let config: MLPDenoiserConfig
  public let mlp: MLP
  let classEmbedding: Embedding?

  public init(config: MLPDenoiserConfig, using rng: inout RandomGenerator) {
    self.config = config
    mlp = MLP(
      inputSize: config.firstLayerInput, width: config.width, depth: config.depth,
      outputSize: config.outputSize, activation: config.activation, using: &rng)
    classEmbedding = config.classes > 0 ? Embedding(count: config.classes + 1, dimension: config.timeEmbedding, using: &rng) : nil
    super.init()
    register("mlp", mlp)
    if let classEmbedding { register("class_embedding", classEmbedding) }
  }

  /// `[N, outputSize]`, reshaped to the input's shape when `outputSize == inputSize`; `labels`
  /// (one per sample, `config.classes` for the null class) for a class-conditional network.
  public func callAsFunction(_ x: Tensor, timesteps: [Float], labels: [Int]? = nil) -> Tensor {
    let output = mlp(input(x, timesteps: timesteps, labels: labels))
    return config.outputSize == config.inputSize ? output.reshaped(x.shape) : output
  }

  /// The first layer's input: the flattened sample, the time embedding and the class embedding.
  func input(_ x: Tensor, timesteps: [Float], labels: [Int]?) -> Tensor {
    let n = x.shape[0]
    precondition(
      x.count == n * config.inputSize, "MLP input \(x.shape) does not hold \(config.inputSize) values per sample")
    precondition(timesteps.count == n, "\(timesteps.count) timesteps for a batch of \(n)")
    var parts = [
      x.reshaped([n, config.inputSize]),
      sinusoidalEmbedding(timesteps, dimension: config.timeEmbedding, flipSinToCos: true, frequencyShift: 0),
    ]
    if let classEmbedding {
      let labels = labels ?? [Int](repeating: config.classes, count: n)
      precondition(
        labels.count == n && labels.allSatisfy { (0...config.classes).contains($0) },
        "class labels \(labels) for a batch of \(n) of a network of \(config.classes) classes")
      parts.append(classEmbedding(labels))
    }
    return Tensor.concat(parts, axis: 1)
  }
}

extension MLPDenoiserNetwork: FeatureTapping {
  /// The hidden activations (`[N, width]` each); the last is the bottleneck. The output layer
  /// does not run.
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?) -> NetworkFeatures {
    let hidden = mlp.hiddenActivations(input(x, timesteps: timesteps, labels: labels))
    return NetworkFeatures(encoder: hidden, bottleneck: hidden[hidden.count - 1])
  }
}

/// A time-conditioned MLP denoiser for vector (e.g. 2-D toy) data.
public final class MLPDenoiser: Denoiser {
  public let network: MLPDenoiserNetwork
  public let schedule: NoiseSchedule
  /// The parameters of ``schedule`` when it was built from them (written to `denoiser.json`).
  public var scheduleConfig: ScheduleConfig?
  public let prediction: Prediction

  public init(network: MLPDenoiserNetwork, schedule: NoiseSchedule, prediction: Prediction = .epsilon) {
    self.network = network
    self.schedule = schedule
    self.prediction = prediction
  }

  /// A freshly initialised network on the schedule of `scheduleConfig`.
  public convenience init(
    config: MLPDenoiserConfig, scheduleConfig: ScheduleConfig = ScheduleConfig(), prediction: Prediction = .epsilon,
    using rng: inout RandomGenerator
  ) {
    self.init(
      network: MLPDenoiserNetwork(config: config, using: &rng), schedule: scheduleConfig.schedule,
      prediction: prediction)
    self.scheduleConfig = scheduleConfig
  }

  public var sampleShape: [Int]? { [network.config.inputSize] }

  public var summary: String {
    let c = network.config
    return "MLP denoiser: \(c.inputSize) values, \(c.depth)×\(c.width) \(c.activation.rawValue), "
      + "\(network.parameterCount) parameters; \(prediction.rawValue) prediction; schedule "
      + (scheduleConfig?.summary ?? "of \(schedule.trainSteps) steps")
  }

  public func validateInput(shape: [Int], location: String) throws {
    let c = network.config
    guard shape.count >= 2, shape[0] > 0, shape.dropFirst().reduce(1, *) == c.inputSize,
      c.outputSize == c.inputSize || shape.count == 2
    else {
      throw DistillError.invalidValue(
        location: location, expected: "a batch [N, \(c.inputSize)]", found: "shape \(shape)")
    }
  }

  public var classes: ClassConditioning? {
    let count = network.config.classes
    return count > 0 ? ClassConditioning(count: count, null: count) : nil
  }

  public func callAsFunction(_ x: Tensor, timesteps: [Float], condition: Condition) -> Tensor {
    network(x, timesteps: timesteps, labels: condition.labels)
  }
}

extension MLPDenoiser: FeatureTapping {
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?) -> NetworkFeatures {
    network.features(x, timesteps: timesteps, labels: labels)
  }
}
