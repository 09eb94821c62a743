/// A node of the define-by-run graph. Leaves (tensors marked with ``Tensor/requiringGrad()``)
/// keep their accumulated gradient; interior nodes hold a backward rule until ``Tensor/backward(_:)``
/// has used it.
@usableFromInline
final class GradNode {
  /// Accumulated gradient: persistent on a leaf, transient on an interior node.
  @usableFromInline var grad: Tensor?
  /// One entry per input of the op; `nil` where that input needs no gradient.
  @usableFromInline let inputs: [GradNode?]
  /// Maps the output gradient to one gradient per input (or `nil`). Cleared after use.
  @usableFromInline var rule: ((Tensor) -> [Tensor?])?
  @usableFromInline let isLeaf: Bool
  /// The op name, shown when a graph is misused.
  @usableFromInline let operation: StaticString

  @usableFromInline
  init(leaf: ()) {
    inputs = []
    rule = nil
    isLeaf = true
    operation = "leaf"
  }

  @usableFromInline
  init(operation: StaticString, inputs: [GradNode?], rule: @escaping (Tensor) -> [Tensor?]) {
    self.operation = operation
    self.inputs = inputs
    self.rule = rule
    isLeaf = false
  }
}

/// Whether operations record the graph; see ``withoutGradients(_:)``.
public enum GradientMode {
  @TaskLocal public static var isEnabled = true

  /// True inside the body of ``Tensor/recomputing(_:parameters:_:)``, in both its runs: an op
  /// that computes differently when it records nothing (attention's fused kernel) computes as
  /// it does when recording, so that the run without gradients and the recorded replay give
  /// the same values.
  @TaskLocal static var usesRecordedKernels = false
}

/// Runs `body` without recording any operation for autodiff: results do not require gradients.
///
/// Teacher and fake-score forward passes in DMD run here; backward rules run here too.
@inlinable
public func withoutGradients<R>(_ body: () throws -> R) rethrows -> R {
  try GradientMode.$isEnabled.withValue(false, operation: body)
}

extension Tensor {
  // MARK: Gradient state

  /// Whether this tensor takes part in differentiation.
  public var requiresGrad: Bool { node != nil }

  /// This tensor as a new leaf that accumulates a gradient in ``grad``.
  public func requiringGrad() -> Tensor {
    precondition(!storage.isBFloat16, "a bfloat16 tensor \(shape) holds frozen weights: it takes no gradient")
    return Tensor(shape: shape, storage: storage, node: GradNode(leaf: ()))
  }

  /// This tensor cut from the graph: same values, no gradient flows through it.
  public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

  /// The gradient accumulated into this leaf by ``backward(_:)``, or `nil`.
  public var grad: Tensor? {
    get { node?.grad }
    nonmutating set {
      precondition(node?.isLeaf ?? false, "only a leaf tensor that requires gradients holds a gradient")
      node!.grad = newValue
    }
  }

  /// Drops the accumulated gradient of this leaf.
  public func zeroGrad() { node?.grad = nil }

  /// Records `self` as the result of `operation` on `inputs`, when gradients are wanted: the
  /// extension point for an op defined outside this module.
  ///
  /// ```swift
  /// let y = Tensor(shape: x.shape) { out in ... }   // the forward kernel
  /// return y.recorded("cube", [x]) { g in [g * 3 * x.square()] }
  /// ```
  ///
  /// - Parameter rule: maps the output gradient to one gradient per input, each of that
  ///   input's shape, or `nil` where it needs none. It runs without recording.
  @inlinable
  public func recorded(
    _ operation: StaticString, _ inputs: [Tensor], rule: @escaping (Tensor) -> [Tensor?]
  ) -> Tensor {
    guard inputs.contains(where: { $0.node != nil }), GradientMode.isEnabled else { return self }
    var result = self
    result.node = GradNode(operation: operation, inputs: inputs.map(\.node), rule: rule)
    return result
  }

  // MARK: Backward

  /// Propagates gradients from this tensor to every leaf that requires them.
  ///
  /// - Parameter seed: the gradient of the final objective with respect to `self`; omitted,
  ///   `self` must have one element and the seed is 1.
  ///
  /// Leaf gradients accumulate across calls; interior nodes release their rules, so a graph
  /// is walked once.
  public func backward(_ seed: Tensor? = nil) {
    guard let root = node else {
      preconditionFailure("backward() on a tensor that does not require gradients")
    }
    if seed == nil {
      precondition(count == 1, "backward() without a seed needs a one-element tensor, shape is \(shape)")
    }
    let seed = seed ?? Tensor.ones(shape)
    precondition(seed.shape == shape, "seed shape \(seed.shape) differs from tensor shape \(shape)")
    Self.propagate(seed, from: root, order: Self.topologicalOrder(from: root))
  }

  /// Walks `order` (``topologicalOrder(from:)`` of `root`) backwards from `seed` at `root`.
  static func propagate(_ seed: Tensor, from root: GradNode, order: [GradNode]) {
    withoutGradients {
      Self.accumulate(seed.detached(), into: root)
      for node in order.reversed() {
        guard !node.isLeaf else { continue }
        guard let rule = node.rule else {
          preconditionFailure("backward through '\(node.operation)' a second time: the graph was released")
        }
        guard let grad = node.grad else { continue }
        let inputGrads = rule(grad)
        assert(inputGrads.count == node.inputs.count, "'\(node.operation)' returned the wrong number of gradients")
        for (input, inputGrad) in zip(node.inputs, inputGrads) {
          if let input, let inputGrad { Self.accumulate(inputGrad, into: input) }
        }
        node.grad = nil
        node.rule = nil
      }
    }
  }

  static func accumulate(_ grad: Tensor, into node: GradNode) {
    if var existing = node.grad {
      node.grad = nil
      precondition(existing.shape == grad.shape, "gradient shape \(grad.shape) differs from \(existing.shape)")
      existing.addInPlace(grad)
      node.grad = existing
    } else {
      node.grad = grad
    }
  }

  /// Nodes reachable from `root`, each after all of its inputs (iterative post-order DFS).
  static func topologicalOrder(from root: GradNode) -> [GradNode] {
    var order: [GradNode] = []
    var visited = Set<ObjectIdentifier>()
    var stack: [(GradNode, Int)] = [(root, 0)]
    visited.insert(ObjectIdentifier(root))
    while let (node, next) = stack.popLast() {
      if next < node.inputs.count {
        stack.append((node, next + 1))
        if let child = node.inputs[next], visited.insert(ObjectIdentifier(child)).inserted {
          stack.append((child, 0))
        }
      } else {
        order.append(node)
      }
    }
    return order
  }

  /// Adds `other` (same shape) into `self` without recording.
  mutating func addInPlace(_ other: Tensor) {
    other.withUnsafeBufferPointer { source in
      withUnsafeMutableBufferPointer { target in
        for i in 0..<target.count { target[i] += source[i] }
      }
    }
  }
}

/// Evaluates `body` and returns its value with the gradients of `parameters`, each of its
/// parameter's shape (zeros where the value does not depend on it).
///
/// The parameters are used as fresh leaves, so gradients already held elsewhere are untouched.
///
/// ```swift
/// let (loss, grads) = valueWithGradients(at: [w, b]) { p in ((x.matmul(p[0]) + p[1]) - y).square().mean() }
/// ```
public func valueWithGradients(
  at parameters: [Tensor], of body: ([Tensor]) throws -> Tensor
) rethrows -> (value: Tensor, gradients: [Tensor]) {
  let leaves = parameters.map { $0.requiringGrad() }
  let value = try GradientMode.$isEnabled.withValue(true) { try body(leaves) }
  if value.requiresGrad { value.backward() }
  return (value.detached(), zip(leaves, parameters).map { $0.grad ?? Tensor.zeros($1.shape) })
}
