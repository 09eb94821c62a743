/// An exponential moving average of named parameters, kept in shadow tensors of its own.
///
/// The shadows start as copies of the parameters (never sharing storage with them) and
/// ``update()`` moves them towards the live weights:
///
/// ```text
/// shadow = decay · shadow + (1 - decay) · parameter
/// ```
///
/// with `decay` and `1 - decay` computed in `Double` and rounded to `Float` once, in one
/// fused loop per parameter. The live weights are only read.
///
/// ```swift
/// let ema = ExponentialMovingAverage(model.namedParameters, decay: 0.999)
/// for batch in data { ...; optimizer.step(); ema.update() }
/// try ema.copy(to: evalModel.namedParameters)   // or save ema.stateDict()
/// ```
public final class ExponentialMovingAverage {
  /// The tracked parameters, in order.
  public let parameters: [NamedParameter]
  /// The weight of the old average in ``update()``, in [0, 1].
  public var decay: Double {
    didSet { precondition((0...1).contains(decay), "EMA decay \(decay) is not in [0, 1]") }
  }
  private var shadows: [Tensor]
  private let indexByName: [String: Int]

  /// Tracks `parameters`, starting from copies of their current values.
  public init(_ parameters: [NamedParameter], decay: Double) {
    precondition((0...1).contains(decay), "EMA decay \(decay) is not in [0, 1]")
    checkUniqueNames(parameters, "ExponentialMovingAverage")
    self.parameters = parameters
    self.decay = decay
    shadows = parameters.map { Self.copy(of: $0.parameter.value) }
    indexByName = Dictionary(uniqueKeysWithValues: parameters.enumerated().map { ($1.name, $0) })
  }

  /// A detached tensor with its own storage holding the values of `tensor`.
  private static func copy(of tensor: Tensor) -> Tensor {
    tensor.withUnsafeBufferPointer { source in
      Tensor(shape: tensor.shape) { $0.baseAddress!.initialize(from: source.baseAddress!, count: source.count) }
    }
  }

  /// Moves every shadow towards its parameter's current value.
  public func update() {
    let keep = Float(decay)
    let take = Float(1 - decay)
    for index in shadows.indices {
      let value = parameters[index].parameter.value
      precondition(
        value.shape == shadows[index].shape,
        "EMA: parameter '\(parameters[index].name)' changed shape from \(shadows[index].shape) to \(value.shape)")
      value.withUnsafeBufferPointer { pBuffer in
        let p = pBuffer.baseAddress!
        shadows[index].withUnsafeMutableBufferPointer { sBuffer in
          let s = sBuffer.baseAddress!
          parallelFor(sBuffer.count, cost: 3) { range in
            for i in range { s[i] = keep * s[i] + take * p[i] }
          }
        }
      }
    }
  }

  /// The averaged value of the parameter called `name`, or `nil` if it is not tracked.
  public func shadow(named name: String) -> Tensor? {
    indexByName[name].map { shadows[$0] }
  }

  /// Overwrites each of `targets` with the shadow of the same name (e.g. to evaluate or
  /// export the averaged model; pass ``parameters`` to replace the live weights).
  ///
  /// Throws ``DistillError/stateDictMismatch(problems:)`` naming every target without a
  /// shadow or of another shape, and writes nothing then.
  public func copy(to targets: [NamedParameter]) throws {
    var problems: [String] = []
    for target in targets {
      guard let index = indexByName[target.name] else {
        problems.append("no moving average for '\(target.name)'")
        continue
      }
      if target.parameter.shape != shadows[index].shape {
        problems.append("'\(target.name)' has shape \(target.parameter.shape), the average \(shadows[index].shape)")
      }
    }
    if !problems.isEmpty { throw DistillError.stateDictMismatch(problems: problems) }
    for target in targets { target.parameter.assign(shadows[indexByName[target.name]!]) }
  }

  /// The shadows keyed by parameter name: loadable as the weights of the averaged model.
  public func stateDict() -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: zip(parameters, shadows).map { ($0.name, $1) })
  }

  /// Replaces the shadows with copies of `state` (as written by ``stateDict()``); throws
  /// ``DistillError/stateDictMismatch(problems:)`` naming every missing, mis-shaped or
  /// unexpected key, and changes nothing then.
  public func loadStateDict(_ state: [String: Tensor]) throws {
    var reader = StateDictReader(state)
    let loaded = parameters.map { reader.tensor($0.name, shape: $0.parameter.shape) }
    try reader.finish()
    shadows = loaded.map { Self.copy(of: $0!) }
  }
}
