/// Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight
/// decay, exactly as `torch.optim.SGD` (non-fused, single-tensor):
///
/// ```text
/// g = grad + weightDecay · p                      (when weightDecay ≠ 0)
/// buf = g                                         (the parameter's first step)
/// buf = momentum · buf + (1 - dampening) · g      (later steps)
/// g = nesterov ? g + momentum · buf : buf         (when momentum ≠ 0)
/// p = p - lr · g
/// ```
///
/// State keys: `"step"`, `"<name>.step"` and, when `momentum ≠ 0` and the parameter has
/// stepped, `"<name>.momentum_buffer"`.
public final class SGD: Optimizer {
  public let parameters: [NamedParameter]
  public var learningRate: Float
  public let momentum: Double
  public let dampening: Double
  public let nesterov: Bool
  public let weightDecay: Double
  public private(set) var stepCount = 0

  /// Per-parameter state; a class so that buffers are mutated in place.
  final class Slot {
    var steps = 0
    var momentumBuffer: Tensor?
  }
  private let slots: [Slot]

  public init(
    _ parameters: [NamedParameter], learningRate: Float, momentum: Double = 0,
    dampening: Double = 0, nesterov: Bool = false, weightDecay: Double = 0
  ) {
    precondition(learningRate >= 0, "SGD: invalid learning rate \(learningRate)")
    precondition(momentum >= 0, "SGD: invalid momentum \(momentum)")
    precondition(weightDecay >= 0, "SGD: invalid weight decay \(weightDecay)")
    precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov momentum requires a momentum and zero dampening")
    checkUniqueNames(parameters, "SGD")
    self.parameters = parameters
    self.learningRate = learningRate
    self.momentum = momentum
    self.dampening = dampening
    self.nesterov = nesterov
    self.weightDecay = weightDecay
    slots = parameters.map { _ in Slot() }
  }

  public func step() {
    stepCount += 1
    let negLR = Float(-Double(learningRate))
    let decay = Float(weightDecay)
    let useDecay = weightDecay != 0
    let mom = Float(momentum)
    let keep = Float(1 - dampening)
    let nesterov = nesterov
    for (entry, slot) in zip(parameters, slots) {
      let parameter = entry.parameter
      guard let grad = parameter.grad else { continue }
      precondition(grad.shape == parameter.shape, "SGD: gradient of '\(entry.name)' has shape \(grad.shape), parameter \(parameter.shape)")
      slot.steps += 1
      let shape = parameter.shape  // read before `value` is held for modification
      grad.withUnsafeBufferPointer { gBuffer in
        let g = gBuffer.baseAddress!
        parameter.value.withUnsafeMutableBufferPointer { pBuffer in
          let p = pBuffer.baseAddress!
          let n = pBuffer.count
          if momentum == 0 {
            parallelFor(n, cost: 3) { range in
              for i in range {
                var d = g[i]
                if useDecay { d = d + decay * p[i] }
                p[i] = p[i] + negLR * d
              }
            }
          } else if slot.momentumBuffer == nil {
            // First step: the buffer is the (decayed) gradient itself, written as it is created.
            slot.momentumBuffer = Tensor(shape: shape) { bBuffer in
              let b = bBuffer.baseAddress!
              parallelFor(n, cost: 4) { range in
                for i in range {
                  var d = g[i]
                  if useDecay { d = d + decay * p[i] }
                  b[i] = d
                  if nesterov { d = d + mom * d }
                  p[i] = p[i] + negLR * d
                }
              }
            }
          } else {
            slot.momentumBuffer!.withUnsafeMutableBufferPointer { bBuffer in
              let b = bBuffer.baseAddress!
              parallelFor(n, cost: 4) { range in
                for i in range {
                  var d = g[i]
                  if useDecay { d = d + decay * p[i] }
                  let v = b[i] * mom + keep * d
                  b[i] = v
                  d = nesterov ? d + mom * v : v
                  p[i] = p[i] + negLR * d
                }
              }
            }
          }
        }
      }
    }
  }

  public func stateDict() -> [String: Tensor] {
    var state = ["step": stepTensor(stepCount)]
    for (entry, slot) in zip(parameters, slots) {
      state["\(entry.name).step"] = stepTensor(slot.steps)
      if let buffer = slot.momentumBuffer { state["\(entry.name).momentum_buffer"] = buffer }
    }
    return state
  }

  public func loadStateDict(_ state: [String: Tensor]) throws {
    var reader = StateDictReader(state)
    let step = reader.count("step")
    var loaded: [(steps: Int, buffer: Tensor?)] = []
    for entry in parameters {
      let steps = reader.count("\(entry.name).step") ?? 0
      var buffer: Tensor?
      if momentum != 0 && steps > 0 {
        buffer = reader.tensor("\(entry.name).momentum_buffer", shape: entry.parameter.shape)
      }
      loaded.append((steps, buffer))
    }
    try reader.finish()
    stepCount = step!
    for (slot, state) in zip(slots, loaded) {
      slot.steps = state.steps
      slot.momentumBuffer = state.buffer
    }
  }
}
