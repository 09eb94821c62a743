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

  public init(
    inputSize: Int, width: Int = 128, depth: Int = 3, outputSize: Int? = nil, timeEmbedding: Int = 16,
    activation: Activation = .silu
  ) {
    self.inputSize = inputSize
    self.width = width
    self.depth = depth
    self.outputSize = outputSize ?? inputSize
    self.timeEmbedding = timeEmbedding
    self.activation = activation
  }

  /// Checks sizes; `location` names the file and JSON path in errors.
  public func validate(location: String) throws {
    for (key, value, minimum) in [
      ("inputSize", inputSize, 1), ("width", width, 1), ("depth", depth, 1), ("outputSize", outputSize, 1),
      ("timeEmbedding", timeEmbedding, 2),
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
    let (input, hidden, layers) = (Double(inputSize + timeEmbedding), Double(width), Double(depth))
    let total = (input * hidden + hidden) + (layers - 1) * (hidden * hidden + hidden) + (hidden * Double(outputSize) + Double(outputSize))
    guard total <= Double(Self.maximumParameterCount) else {
      throw DistillError.invalidValue(
        location: "\(location): width", expected: "an MLP of at most \(Self.maximumParameterCount) parameters",
        found: "\(total) parameters")
    }
    return Int(total)
  }

  var json: JSONValue {
    .object([
      "type": .string("mlp"), "inputSize": .number(Double(inputSize)), "width": .number(Double(width)),
      "depth": .number(Double(depth)), "outputSize": .number(Double(outputSize)),
      "timeEmbedding": .number(Double(timeEmbedding)), "activation": .string(activation.rawValue),
    ])
  }

  /// Reads the fields of an `"mlp"` network object (the reader has read `type`).
  static func decode(_ r: inout JSONObjectReader) throws -> MLPDenoiserConfig {
    let inputSize = try r.int("inputSize")
    let width = try r.int("width")
    let depth = try r.int("depth")
    let outputSize = try r.int("outputSize")
    let timeEmbedding = try r.int("timeEmbedding", default: 16)
    let activation = try r.choice("activation", Activation.allCases.map(\.rawValue), default: "silu")
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
      depth: try required("depth", depth), outputSize: outputSize, timeEmbedding: timeEmbedding)
    config.activation = Activation(rawValue: activation)!
    try config.validate(location: r.location)
    return config
  }
}

/// An MLP on `[x, sinusoidal(t)]`: the flattened sample concatenated with a
/// `timeEmbedding`-dimensional embedding of the timestep (diffusers' `get_timestep_embedding`
/// with cos first and no frequency shift), through `depth` hidden layers. Weight keys are
/// `mlp.0.weight`, `mlp.0.bias`, `mlp.2.weight`, ...
public final class MLPDenoiserNetwork: Module {
  public let config: MLPDenoiserConfig
  public let mlp: MLP

  public init(config: MLPDenoiserConfig, using rng: inout RandomGenerator) {
    self.config = config
    mlp = MLP(
      inputSize: config.inputSize + config.timeEmbedding, width: config.width, depth: config.depth,
      outputSize: config.outputSize, activation: config.activation, using: &rng)
    super.init()
    register("mlp", mlp)
  }

  /// `[N, outputSize]`, reshaped to the input's shape when `outputSize == inputSize`.
  public func callAsFunction(_ x: Tensor, timesteps: [Float]) -> Tensor {
    let n = x.shape[0]
    precondition(
      x.count == n * config.inputSize, "MLP input \(x.shape) does not hold \(config.inputSize) values per sample")
    precondition(timesteps.count == n, "\(timesteps.count) timesteps for a batch of \(n)")
    let flat = x.reshaped([n, config.inputSize])
    let embedding = sinusoidalEmbedding(
      timesteps, dimension: config.timeEmbedding, flipSinToCos: true, frequencyShift: 0)
    let output = mlp(Tensor.concat([flat, embedding], axis: 1))
    return config.outputSize == config.inputSize ? output.reshaped(x.shape) : output
  }
}

extension MLPDenoiserNetwork: FeatureTapping {
  /// The hidden activations (`[N, width]` each); the last is the bottleneck. The output layer
  /// does not run.
  public func features(_ x: Tensor, timesteps: [Float]) -> NetworkFeatures {
    let n = x.shape[0]
    precondition(
      x.count == n * config.inputSize, "MLP input \(x.shape) does not hold \(config.inputSize) values per sample")
    precondition(timesteps.count == n, "\(timesteps.count) timesteps for a batch of \(n)")
    let embedding = sinusoidalEmbedding(
      timesteps, dimension: config.timeEmbedding, flipSinToCos: true, frequencyShift: 0)
    let hidden = mlp.hiddenActivations(Tensor.concat([x.reshaped([n, config.inputSize]), embedding], axis: 1))
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

  public func callAsFunction(_ x: Tensor, timesteps: [Float]) -> Tensor { network(x, timesteps: timesteps) }
}

extension MLPDenoiser: FeatureTapping {
  public func features(_ x: Tensor, timesteps: [Float]) -> NetworkFeatures { network.features(x, timesteps: timesteps) }
}
