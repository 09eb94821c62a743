/// A parameter with its name in its module tree (`"encoder.0.weight"`), as modules list them
/// and optimizers, EMA and gradient reduction take them.
public typealias NamedParameter = (name: String, parameter: Parameter)

/// A trainable tensor: a gradient-accumulating leaf that optimizers update in place.
///
/// Modules hold parameters; forward passes read ``value``; ``Tensor/backward(_:)`` fills
/// ``grad``; an ``Optimizer`` writes the new value back. A parameter is a reference so that
/// the module, the optimizer and an EMA all see the same weights.
///
/// A parameter that is a product's weight (``isProductWeight``: a `Linear`'s or a
/// convolution's) can be held in bfloat16 by a frozen network (``Module/holdProductWeights(in:)``):
/// its value is then a bfloat16 tensor (``Tensor/isBFloat16``) that takes no gradient, and no
/// optimizer or EMA accepts it.
public final class Parameter: @unchecked Sendable {
  /// The current weights, a leaf that requires gradients; a bfloat16 value stays detached.
  public var value: Tensor {
    didSet {
      if value.isBFloat16 {
        if value.requiresGrad { value = value.detached() }
      } else if value.node == nil || !(value.node!.isLeaf) {
        value = value.detached().requiringGrad()
      }
    }
  }

  /// Whether the value is only ever an operand of products and convolutions (a weight
  /// matrix or kernel, not a bias or a norm's scale), so that a frozen network may hold it in
  /// bfloat16.
  public let isProductWeight: Bool

  /// A parameter holding `value`; a product weight made inside `withProductWeights(.bf16)`
  /// is held in bfloat16 from the start.
  public init(_ value: Tensor, isProductWeight: Bool = false) {
    self.value =
      isProductWeight && WeightFormat.construction == .bf16 ? value.bfloat16Rounded() : value.detached().requiringGrad()
    self.isProductWeight = isProductWeight
  }

  /// Whether the value is held in bfloat16 (frozen).
  public var isBFloat16: Bool { value.isBFloat16 }

  /// The gradient accumulated since the last ``zeroGrad()``, or `nil`.
  public var grad: Tensor? {
    get { value.grad }
    set { value.grad = newValue }
  }

  public var shape: [Int] { value.shape }

  /// Drops the accumulated gradient.
  public func zeroGrad() { value.zeroGrad() }

  /// Overwrites the weights with `newValue` (same shape), keeping the gradient leaf (a
  /// bfloat16 parameter takes `newValue` rounded to bfloat16).
  public func assign(_ newValue: Tensor) {
    precondition(newValue.shape == value.shape, "assigning \(newValue.shape) to a parameter of shape \(value.shape)")
    if value.isBFloat16 {
      value = newValue.bfloat16Rounded()
      return
    }
    newValue.withUnsafeBufferPointer { source in
      value.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: source.baseAddress!, count: source.count) }
    }
  }
}
