/// An elementwise nonlinearity, by name; as a layer it has no parameters.
public enum Activation: String, Sendable, CaseIterable {
  case identity, relu, silu, gelu, geluTanh = "gelu-tanh", sigmoid, tanh, softplus

  public func callAsFunction(_ x: Tensor) -> Tensor {
    switch self {
    case .identity: return x
    case .relu: return x.relu()
    case .silu: return x.silu()
    case .gelu: return x.gelu()
    case .geluTanh: return x.gelu(approximateTanh: true)
    case .sigmoid: return x.sigmoid()
    case .tanh: return x.tanh()
    case .softplus: return x.softplus()
    }
  }
}

/// An ``Activation`` as a layer, for ``Sequential`` (PyTorch's `nn.SiLU()` and friends).
public final class ActivationLayer: Module, UnaryLayer {
  public let activation: Activation

  public init(_ activation: Activation) {
    self.activation = activation
    super.init()
  }

  public func callAsFunction(_ x: Tensor) -> Tensor { activation(x) }
}
