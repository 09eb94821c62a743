/// A parameter with its name in its module tree (`"encoder.0.weight"`), as modules list them
/// and optimizers, EMA and gradient reduction take them.
public typealias NamedParameter = (name: String, parameter: Parameter)

/// A trainable tensor: a gradient-accumulating leaf that optimizers update in place.
///
/// Modules hold parameters; forward passes read ``value``; ``Tensor/backward(_:)`` fills
/// ``grad``; an ``Optimizer`` writes the new value back. A parameter is a reference so that
/// the module, the optimizer and an EMA all see the same weights.
public final class Parameter: @unchecked Sendable {
  /// The current weights, a leaf that requires gradients.
  public var value: Tensor {
    didSet {
      if value.node == nil || !(value.node!.isLeaf) { value = value.detached().requiringGrad() }
    }
  }

  public init(_ value: Tensor) { self.value = value.detached().requiringGrad() }

  /// The gradient accumulated since the last ``zeroGrad()``, or `nil`.
  public var grad: Tensor? {
    get { value.grad }
    set { value.grad = newValue }
  }

  public var shape: [Int] { value.shape }

  /// Drops the accumulated gradient.
  public func zeroGrad() { value.zeroGrad() }

  /// Overwrites the weights with `newValue` (same shape), keeping the gradient leaf.
  public func assign(_ newValue: Tensor) {
    precondition(newValue.shape == value.shape, "assigning \(newValue.shape) to a parameter of shape \(value.shape)")
    newValue.withUnsafeBufferPointer { source in
      value.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: source.baseAddress!, count: source.count) }
    }
  }
}
