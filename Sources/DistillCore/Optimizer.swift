/// Updates a fixed list of named ``Parameter``s from their gradients, in place.
///
/// Every optimizer follows the non-fused single-tensor PyTorch algorithm of the same name:
/// a parameter whose ``Parameter/grad`` is `nil` is skipped (its state does not advance),
/// scalar factors are computed in `Double` and the elementwise update in `Float`, in one
/// fused loop over each parameter's buffers.
///
/// State I/O uses flat keys: `"step"` (the number of ``step()`` calls) and, per parameter,
/// `"<name>.step"` (the steps that parameter took) plus the optimizer's buffers such as
/// `"<name>.exp_avg"`, present once that parameter has taken a step. Counts are stored as
/// one-element tensors, exact up to 2²⁴ steps.
public protocol Optimizer: AnyObject {
  /// The parameters updated by ``step()``, in order; names key the state dict.
  var parameters: [NamedParameter] { get }
  /// The learning rate used by the next ``step()`` (a schedule may change it every step).
  var learningRate: Float { get set }
  /// The number of ``step()`` calls so far, restored by ``loadStateDict(_:)``.
  var stepCount: Int { get }
  /// Updates every parameter that holds a gradient.
  func step()
  /// Drops every parameter's gradient.
  func zeroGrad()
  /// The optimizer state: tensors that share storage copy-on-write with the live state.
  func stateDict() -> [String: Tensor]
  /// Restores a state written by ``stateDict()``; throws ``DistillError/stateDictMismatch(problems:)``
  /// naming every missing, mis-shaped or unexpected key, and changes nothing then.
  func loadStateDict(_ state: [String: Tensor]) throws
}

extension Optimizer {
  public func zeroGrad() {
    for entry in parameters { entry.parameter.zeroGrad() }
  }
}

/// Validates parameter names for an optimizer or EMA, and that every parameter is trainable:
/// a weight held in bfloat16 is frozen (``Module/holdProductWeights(in:)``) and takes no
/// gradient, so an optimizer would skip it silently.
func checkUniqueNames(_ parameters: [NamedParameter], _ owner: String) {
  var seen = Set<String>()
  for entry in parameters {
    precondition(seen.insert(entry.name).inserted, "\(owner): parameter name '\(entry.name)' appears twice")
    precondition(
      !entry.parameter.isBFloat16,
      "\(owner): parameter '\(entry.name)' is held in bfloat16, frozen; a trained parameter must be float32")
  }
}

/// A one-element tensor holding a step count (exact up to 2²⁴).
func stepTensor(_ count: Int) -> Tensor {
  precondition(count <= 1 << 24, "step count \(count) is too large to store exactly in a Float tensor")
  return Tensor(shape: [1], scalars: [Float(count)])
}

/// Reads a state dict, collecting every problem before anything is applied.
struct StateDictReader {
  private let state: [String: Tensor]
  private var consumed = Set<String>()
  private(set) var problems: [String] = []

  init(_ state: [String: Tensor]) { self.state = state }

  /// The tensor at `key`, detached, if present with `shape`; records a problem otherwise.
  mutating func tensor(_ key: String, shape: [Int]) -> Tensor? {
    consumed.insert(key)
    guard let tensor = state[key] else {
      problems.append("missing key '\(key)' (expected shape \(shape))")
      return nil
    }
    guard tensor.shape == shape else {
      problems.append("'\(key)' has shape \(tensor.shape), expected \(shape)")
      return nil
    }
    return tensor.detached()
  }

  /// The step count at `key`: a one-element tensor holding a non-negative integer.
  mutating func count(_ key: String) -> Int? {
    consumed.insert(key)
    guard let tensor = state[key] else {
      problems.append("missing key '\(key)' (a one-element step count)")
      return nil
    }
    guard tensor.count == 1 else {
      problems.append("'\(key)' has shape \(tensor.shape), expected one element")
      return nil
    }
    let value = tensor.withUnsafeBufferPointer { $0[0] }
    guard value >= 0, value <= Float(1 << 24), value == value.rounded() else {
      problems.append("'\(key)' holds \(value), expected a non-negative whole step count")
      return nil
    }
    return Int(value)
  }

  /// Records keys that no read asked for, then throws if anything was wrong.
  mutating func finish() throws {
    for key in state.keys.sorted() where !consumed.contains(key) {
      problems.append("unexpected key '\(key)'")
    }
    if !problems.isEmpty { throw DistillError.stateDictMismatch(problems: problems) }
  }
}

// MARK: - Gradient clipping

/// Scales the gradients of `parameters` so that their global L2 norm is at most `maxNorm`,
/// as `torch.nn.utils.clip_grad_norm_(parameters, maxNorm)` does, and returns the norm
/// before clipping.
///
/// The norm is taken over all gradients together (parameters without a gradient are
/// skipped), accumulated in `Double`. Each gradient is multiplied by
/// `min(1, maxNorm / (norm + 1e-6))`, computed in `Float`; nothing is written when that is 1.
/// A non-finite norm is returned as is (and propagates into the gradients, as in PyTorch).
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Float) -> Float {
  var sumOfSquares = 0.0
  for parameter in parameters {
    guard let grad = parameter.grad else { continue }
    grad.withUnsafeBufferPointer { g in
      var partial = (0.0, 0.0, 0.0, 0.0)
      let n = g.count
      var i = 0
      while i + 4 <= n {
        partial.0 += Double(g[i]) * Double(g[i])
        partial.1 += Double(g[i + 1]) * Double(g[i + 1])
        partial.2 += Double(g[i + 2]) * Double(g[i + 2])
        partial.3 += Double(g[i + 3]) * Double(g[i + 3])
        i += 4
      }
      while i < n {
        partial.0 += Double(g[i]) * Double(g[i])
        i += 1
      }
      sumOfSquares += (partial.0 + partial.1) + (partial.2 + partial.3)
    }
  }
  let norm = Float(sumOfSquares.squareRoot())
  let coefficient = min(maxNorm / (norm + 1e-6), 1)
  // Scaling by exactly 1 is the identity, so it is skipped; a NaN norm gives a NaN coefficient,
  // which is applied as in PyTorch.
  if coefficient < 1 || coefficient.isNaN {
    for parameter in parameters {
      guard var grad = parameter.grad else { continue }
      parameter.grad = nil  // so the buffer is uniquely held and scaled in place
      grad.withUnsafeMutableBufferPointer { g in
        let base = g.baseAddress!
        parallelFor(g.count, cost: 2) { range in
          for i in range { base[i] *= coefficient }
        }
      }
      parameter.grad = grad
    }
  }
  return norm
}
