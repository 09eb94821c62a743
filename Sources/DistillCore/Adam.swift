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
  public let parameters: [(name: String, parameter: Parameter)]
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
    _ parameters: [(name: String, parameter: Parameter)], learningRate: Float = 1e-3,
    betas: (Double, Double) = (0.9, 0.999), epsilon: Double = 1e-8, weightDecay: Double = 0
  ) {
    self.init(
      parameters, learningRate: learningRate, betas: betas, epsilon: epsilon, weightDecay: weightDecay,
      decoupledWeightDecay: false)
  }

  init(
    _ parameters: [(name: String, parameter: Parameter)], learningRate: Float, betas: (Double, Double),
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
              let constants = AdamConstants(
                shrink: shrink, decay: decay, weight: weight, complement: complement, b2: b2, c2: c2,
                bc2Sqrt: bc2Sqrt, eps: eps, negStepSize: negStepSize)
              parallelFor(n, cost: 8) { range in
                // Each flag combination gets its own branch-free (vectorisable) loop.
                switch (decoupled, l2, lerpLow) {
                case (true, _, true): adamUpdate(p, g, m, v, range, constants, decoupled: true, l2: false, lerpLow: true)
                case (true, _, false): adamUpdate(p, g, m, v, range, constants, decoupled: true, l2: false, lerpLow: false)
                case (false, true, true): adamUpdate(p, g, m, v, range, constants, decoupled: false, l2: true, lerpLow: true)
                case (false, true, false): adamUpdate(p, g, m, v, range, constants, decoupled: false, l2: true, lerpLow: false)
                case (false, false, true): adamUpdate(p, g, m, v, range, constants, decoupled: false, l2: false, lerpLow: true)
                case (false, false, false): adamUpdate(p, g, m, v, range, constants, decoupled: false, l2: false, lerpLow: false)
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

/// The Float factors of one Adam step.
private struct AdamConstants {
  var shrink, decay, weight, complement, b2, c2, bc2Sqrt, eps, negStepSize: Float
}

/// The fused Adam/AdamW update of elements `range`; the flags are literals at every call so
/// that each specialisation is a branch-free loop.
@inline(__always)
private func adamUpdate(
  _ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
  _ v: UnsafeMutablePointer<Float>, _ range: Range<Int>, _ k: AdamConstants,
  decoupled: Bool, l2: Bool, lerpLow: Bool
) {
  let (shrink, decay, weight, complement) = (k.shrink, k.decay, k.weight, k.complement)
  let (b2, c2, bc2Sqrt, eps, negStepSize) = (k.b2, k.c2, k.bc2Sqrt, k.eps, k.negStepSize)
  for i in range {
    var pi = p[i]
    if decoupled { pi = pi * shrink }
    var gi = g[i]
    if l2 { gi = gi + decay * pi }
    let mOld = m[i]
    // torch.lerp: self + w (end - self) when |w| < 0.5, else end - (end - self)(1 - w).
    let mi = lerpLow ? mOld + weight * (gi - mOld) : gi - (gi - mOld) * complement
    let vi = v[i] * b2 + c2 * gi * gi
    m[i] = mi
    v[i] = vi
    let denom = vi.squareRoot() / bc2Sqrt + eps
    p[i] = pi + negStepSize * mi / denom
  }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter, 2019), exactly as
/// `torch.optim.AdamW`: each step first scales the parameter by `1 - lr · weightDecay`,
/// then applies the Adam update to the raw gradient. See ``Adam`` for the formulas and keys.
public final class AdamW: Adam {
  public init(
    _ parameters: [(name: String, parameter: Parameter)], learningRate: Float = 1e-3,
    betas: (Double, Double) = (0.9, 0.999), epsilon: Double = 1e-8, weightDecay: Double = 1e-2
  ) {
    super.init(
      parameters, learningRate: learningRate, betas: betas, epsilon: epsilon, weightDecay: weightDecay,
      decoupledWeightDecay: true)
  }
}
