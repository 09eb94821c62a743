import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Adam (Kingma & Ba, 2015) with L2 weight decay, exactly as `torch.optim.Adam`
/// (non-fused, single-tensor, `amsgrad=False`); ``AdamW`` is the decoupled variant.
///
/// For a parameter's `t`-th step (`t` counts only the steps on which it had a gradient):
///
/// ```text
/// p = p · (1 - lr · weightDecay)                   (AdamW only)
/// g = grad + weightDecay · p                       (Adam only, when weightDecay ≠ 0)
/// m = lerp(m, g, 1 - β1)                           (m, v start at zero)
/// v = β2 · v + (1 - β2) · g²
/// bc1 = 1 - β1ᵗ,  bc2 = 1 - β2ᵗ                    (Double)
/// p = p - (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + ε)
/// ```
///
/// Hyperparameters other than the learning rate are `Double` (PyTorch's Python floats), so
/// that the bias corrections match exactly; each factor is rounded to `Float` once for the
/// elementwise loop.
///
/// State keys: `"step"`, `"<name>.step"` and, once the parameter has stepped,
/// `"<name>.exp_avg"` and `"<name>.exp_avg_sq"`.
public class Adam: Optimizer {
  public let parameters: [NamedParameter]
  public var learningRate: Float
  public let betas: (Double, Double)
  public let epsilon: Double
  public let weightDecay: Double
  /// Whether weight decay is decoupled from the gradient (AdamW) rather than L2 (Adam).
  public let decoupledWeightDecay: Bool
  public private(set) var stepCount = 0

  /// Per-parameter state; a class so that buffers are mutated in place.
  final class Slot {
    var steps = 0
    var expAvg: Tensor?
    var expAvgSq: Tensor?
  }
  private let slots: [Slot]

  /// Adam with L2 weight decay (`weightDecay · p` added to the gradient).
  public convenience init(
    _ parameters: [NamedParameter], learningRate: Float = 1e-3,
    betas: (Double, Double) = (0.9, 0.999), epsilon: Double = 1e-8, weightDecay: Double = 0
  ) {
    self.init(
      parameters, learningRate: learningRate, betas: betas, epsilon: epsilon, weightDecay: weightDecay,
      decoupledWeightDecay: false)
  }

  init(
    _ parameters: [NamedParameter], learningRate: Float, betas: (Double, Double),
    epsilon: Double, weightDecay: Double, decoupledWeightDecay: Bool
  ) {
    let kind = decoupledWeightDecay ? "AdamW" : "Adam"
    precondition(learningRate >= 0, "\(kind): invalid learning rate \(learningRate)")
    precondition((0..<1).contains(betas.0) && (0..<1).contains(betas.1), "\(kind): invalid betas \(betas)")
    precondition(epsilon >= 0, "\(kind): invalid epsilon \(epsilon)")
    precondition(weightDecay >= 0, "\(kind): invalid weight decay \(weightDecay)")
    checkUniqueNames(parameters, kind)
    self.parameters = parameters
    self.learningRate = learningRate
    self.betas = betas
    self.epsilon = epsilon
    self.weightDecay = weightDecay
    self.decoupledWeightDecay = decoupledWeightDecay
    slots = parameters.map { _ in Slot() }
  }

  public func step() {
    stepCount += 1
    let lr = Double(learningRate)
    let (beta1, beta2) = betas
    // Loop constants, each rounded to Float once as PyTorch passes Python floats to kernels.
    let l2 = !decoupledWeightDecay && weightDecay != 0
    let decay = Float(weightDecay)
    let shrink = Float(1 - lr * weightDecay)
    let decoupled = decoupledWeightDecay
    let weight = Float(1 - beta1)  // lerp weight
    let lerpLow = abs(weight) < 0.5
    let complement = 1 - weight  // PyTorch's lerp computes (1 - weight) in Float
    let b2 = Float(beta2)
    let c2 = Float(1 - beta2)
    let eps = Float(epsilon)
    for (entry, slot) in zip(parameters, slots) {
      let parameter = entry.parameter
      guard let grad = parameter.grad else { continue }
      precondition(
        grad.shape == parameter.shape,
        "\(decoupled ? "AdamW" : "Adam"): gradient of '\(entry.name)' has shape \(grad.shape), parameter \(parameter.shape)")
      if slot.steps == 0 {
        slot.expAvg = .zeros(parameter.shape)
        slot.expAvgSq = .zeros(parameter.shape)
      }
      slot.steps += 1
      let t = Double(slot.steps)
      let bc1 = 1 - pow(beta1, t)
      let bc2 = 1 - pow(beta2, t)
      let negStepSize = Float(-(lr / bc1))
      let bc2Sqrt = Float(bc2.squareRoot())
      grad.withUnsafeBufferPointer { gBuffer in
        let g = gBuffer.baseAddress!
        parameter.value.withUnsafeMutableBufferPointer { pBuffer in
          let p = pBuffer.baseAddress!
          let n = pBuffer.count
          slot.expAvg!.withUnsafeMutableBufferPointer { mBuffer in
            let m = mBuffer.baseAddress!
            slot.expAvgSq!.withUnsafeMutableBufferPointer { vBuffer in
              let v = vBuffer.baseAddress!
              let constants = distill_adam_constants(
                shrink: shrink, decay: decay, weight: weight, complement: complement, b2: b2, c2: c2,
                bc2_sqrt: bc2Sqrt, eps: eps, neg_step_size: negStepSize)
              let (ps, gs, ms, vs) = (SendablePointer(p), SendableConstPointer(g), SendablePointer(m), SendablePointer(v))
              parallelFor(n, cost: 8) { range in
                distill_adam_update(
                  ps.base + range.lowerBound, gs.base + range.lowerBound, ms.base + range.lowerBound,
                  vs.base + range.lowerBound, range.count, constants, decoupled ? 1 : 0, l2 ? 1 : 0, lerpLow ? 1 : 0)
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
      if let m = slot.expAvg, let v = slot.expAvgSq {
        state["\(entry.name).exp_avg"] = m
        state["\(entry.name).exp_avg_sq"] = v
      }
    }
    return state
  }

  public func loadStateDict(_ state: [String: Tensor]) throws {
    var reader = StateDictReader(state)
    let step = reader.count("step")
    var loaded: [(steps: Int, m: Tensor?, v: Tensor?)] = []
    for entry in parameters {
      let steps = reader.count("\(entry.name).step") ?? 0
      var m: Tensor?
      var v: Tensor?
      if steps > 0 {
        m = reader.tensor("\(entry.name).exp_avg", shape: entry.parameter.shape)
        v = reader.tensor("\(entry.name).exp_avg_sq", shape: entry.parameter.shape)
      }
      loaded.append((steps, m, v))
    }
    try reader.finish()
    stepCount = step!
    for (slot, state) in zip(slots, loaded) {
      slot.steps = state.steps
      slot.expAvg = state.m
      slot.expAvgSq = state.v
    }
  }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter, 2019), exactly as
/// `torch.optim.AdamW`: each step first scales the parameter by `1 - lr · weightDecay`,
/// then applies the Adam update to the raw gradient. See ``Adam`` for the formulas and keys.
public final class AdamW: Adam {
  public init(
    _ parameters: [NamedParameter], learningRate: Float = 1e-3,
    betas: (Double, Double) = (0.9, 0.999), epsilon: Double = 1e-8, weightDecay: Double = 1e-2
  ) {
    super.init(
      parameters, learningRate: learningRate, betas: betas, epsilon: epsilon, weightDecay: weightDecay,
      decoupledWeightDecay: true)
  }
}
