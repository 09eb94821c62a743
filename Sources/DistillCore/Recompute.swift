/// Which activations a training step keeps for its backward pass.
///
/// `none`: every op keeps what its backward rule needs (the default). `blocks`: networks that
/// support it (``UNet2DModel`` and ``UNet2DConditionModel`` in DistillNN) run each block
/// through ``Tensor/recomputing(_:parameters:_:)``, so a block keeps only its inputs and
/// output, and its intermediates are computed again during the backward pass: about one more
/// forward pass of time for a peak memory that no longer grows with the depth of the network
/// (PyTorch's `torch.utils.checkpoint` per block). `selective`: only what is cheap to compute
/// again is: each convolution whose input is a cheap function of tensors kept anyway (a group
/// norm with SiLU, a concatenation, an upsampling, a pad) keeps those tensors instead of its
/// input (``Tensor/conv2d(recomputing:parameters:_:weight:bias:stride:padding:)``), and the
/// attention and transformer blocks, whose activations are large for their few operations,
/// are recomputed whole; the convolutions and products of the residual blocks are not
/// computed twice.
///
/// Like ``ComputePrecision``, the mode is a task-local scope, bound by
/// ``withActivationRecompute(_:_:)`` around a training step (`training.recompute` in a manifest).
public enum ActivationRecompute: String, Sendable, CaseIterable {
  case none, blocks, selective

  /// The mode of the enclosing ``withActivationRecompute(_:_:)`` scope, `none` outside any.
  @TaskLocal public static var current: ActivationRecompute = .none
}

/// Runs `body` with activation recomputation `mode` (see ``ActivationRecompute``).
public func withActivationRecompute<R>(_ mode: ActivationRecompute, _ body: () throws -> R) rethrows
  -> R
{
  try ActivationRecompute.$current.withValue(mode, operation: body)
}

extension Tensor {
  /// `body(inputs)`, computed without keeping its intermediates: when gradients are recorded,
  /// the result's backward rule runs `body` again (with gradients, in the compute precision of
  /// the first run) and propagates through that second graph (`torch.utils.checkpoint`).
  ///
  /// - Parameters:
  ///   - inputs: the tensors `body` computes from; gradients flow back to them.
  ///   - parameters: the leaves (``Parameter/value``) `body` reads besides its inputs; their
  ///     gradients accumulate as without recomputation. Any other tensor that requires
  ///     gradients must come in through `inputs` (checked during the backward pass).
  ///   - body: a deterministic function of its arguments: the same values in give the same
  ///     values out. Random draws go through ``recomputing(_:parameters:using:_:)``.
  ///
  /// Gradients are bit-identical to those of `body` recorded directly when every other use of
  /// an input comes later in the forward pass than this one (as in a network's chain of
  /// blocks): an input's gradient accumulates the rule's contributions one by one onto what
  /// later uses left, in the order the whole graph would have added them.
  public static func recomputing(
    _ inputs: [Tensor], parameters: [Tensor], _ body: @escaping ([Tensor]) -> Tensor
  ) -> Tensor {
    let recorded = inputs.contains { $0.node != nil } || parameters.contains { $0.node != nil }
    guard GradientMode.isEnabled, recorded else { return body(inputs) }
    precondition(
      parameters.allSatisfy { $0.node?.isLeaf ?? true }, "recomputing: parameters must be leaves")
    let values = inputs.map { $0.detached() }
    let precision = ComputePrecision.current
    let output = GradientMode.$usesRecordedKernels.withValue(true) { withoutGradients { body(values) } }
    let inputNodes = inputs.map(\.node)
    let parameterNodes = parameters.map(\.node)
    var result = output
    result.node = GradNode(operation: "recomputing", inputs: inputNodes + parameterNodes) { grad in
      replay(body, values, inputNodes, parameterNodes, precision) { y in
        precondition(
          y.shape == grad.shape, "recomputing: the second run gave \(y.shape), the first \(grad.shape)")
        return grad
      }
      return Array(repeating: nil, count: inputNodes.count + parameterNodes.count)
    }
    return result
  }

  /// ``recomputing(_:parameters:_:)`` for a `body` that draws random numbers: the second run
  /// starts from the generator state the first one started from, so it draws the same numbers
  /// (the same dropout masks); `rng` ends where the first run left it.
  public static func recomputing(
    _ inputs: [Tensor], parameters: [Tensor], using rng: inout RandomGenerator,
    _ body: @escaping ([Tensor], inout RandomGenerator) -> Tensor
  ) -> Tensor {
    final class End { var state: RandomGenerator? }
    let start = rng
    let end = End()
    let result = recomputing(inputs, parameters: parameters) { xs in
      var generator = start
      let y = body(xs, &generator)
      if end.state == nil { end.state = generator }
      return y
    }
    rng = end.state!
    return result
  }

  /// The backward rule of ``recomputing(_:parameters:_:)``: runs `body` again on leaves that
  /// carry the gradient each input has received so far, propagates `seed(y)` (the gradient of
  /// the recomputed `y`, or nil for none) through that graph (parameters accumulate directly)
  /// and hands each input's total back to its node.
  static func replay(
    _ body: ([Tensor]) -> Tensor, _ values: [Tensor], _ inputNodes: [GradNode?],
    _ parameterNodes: [GradNode?],
    _ precision: ComputePrecision, _ seed: (Tensor) -> Tensor?
  ) {
    // One leaf per distinct input node, holding (moved, not copied) that node's gradient.
    var leafFor: [ObjectIdentifier: Tensor] = [:]
    var leaves: [Tensor] = []
    for (value, node) in zip(values, inputNodes) {
      guard let node else {
        leaves.append(value)
        continue
      }
      let key = ObjectIdentifier(node)
      if let leaf = leafFor[key] {
        leaves.append(leaf)
        continue
      }
      let leaf = value.requiringGrad()
      leaf.node!.grad = node.grad
      node.grad = nil
      leafFor[key] = leaf
      leaves.append(leaf)
    }
    var y: Tensor? = GradientMode.$isEnabled.withValue(true) {
      GradientMode.$usesRecordedKernels.withValue(true) {
        ComputePrecision.$current.withValue(precision) { body(leaves) }
      }
    }
    let seedGrad = seed(y!)
    let root = y!.node
    y = nil  // the graph keeps what its rules read; the value itself is not needed any more
    if let grad = seedGrad, let root {
      let order = topologicalOrder(from: root)
      var allowed = Set(leafFor.values.map { ObjectIdentifier($0.node!) })
      for case let node? in parameterNodes { allowed.insert(ObjectIdentifier(node)) }
      for node in order where node.isLeaf {
        precondition(
          allowed.contains(ObjectIdentifier(node)),
          "recomputing: the body reads a tensor that requires gradients and is neither an input nor a parameter"
        )
      }
      propagate(grad, from: root, order: order)
    }
    for case let node? in inputNodes {
      guard let leaf = leafFor.removeValue(forKey: ObjectIdentifier(node)) else { continue }
      node.grad = leaf.node!.grad
      leaf.node!.grad = nil
    }
  }
}

extension Module {
  /// `body(inputs)`, a block of this module's network: through
  /// ``Tensor/recomputing(_:parameters:_:)`` (with this module's parameters) inside a
  /// ``withActivationRecompute(_:_:)`` scope of `blocks`, or of `selective` when `attention`
  /// (an attention or transformer block), directly otherwise.
  public func recomputable(
    _ inputs: [Tensor], attention: Bool = false, _ body: @escaping ([Tensor]) -> Tensor
  ) -> Tensor {
    let mode = ActivationRecompute.current
    guard mode == .blocks || (mode == .selective && attention), GradientMode.isEnabled else {
      return body(inputs)
    }
    return Tensor.recomputing(inputs, parameters: parameters().map(\.value), body)
  }
}
