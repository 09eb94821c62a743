/// Group normalisation, PyTorch's `nn.GroupNorm`: `weight` and `bias` are `[channels]`,
/// initialised to ones and zeros.
public final class GroupNorm: Module, UnaryLayer {
  public let groups: Int
  public let eps: Float
  public let weight: Parameter
  public let bias: Parameter

  public init(groups: Int, channels: Int, eps: Float = 1e-5) {
    precondition(channels % groups == 0, "\(channels) channels do not split into \(groups) groups")
    self.groups = groups
    self.eps = eps
    weight = Parameter(.ones([channels]))
    bias = Parameter(.zeros([channels]))
    super.init()
    register("weight", weight)
    register("bias", bias)
  }

  public func callAsFunction(_ x: Tensor) -> Tensor {
    Tensor.groupNorm(x, groups: groups, weight: weight.value, bias: bias.value, eps: eps)
  }

  /// `activation(self(x))`; SiLU runs fused with the norm (``Tensor/groupNormSiLU(_:groups:weight:bias:eps:)``),
  /// which keeps one activation fewer for the backward pass.
  public func callAsFunction(_ x: Tensor, then activation: Activation) -> Tensor {
    guard activation == .silu else { return activation(self(x)) }
    return Tensor.groupNormSiLU(x, groups: groups, weight: weight.value, bias: bias.value, eps: eps)
  }
}

/// Layer normalisation over the last dimension, PyTorch's `nn.LayerNorm(size)`.
public final class LayerNorm: Module, UnaryLayer {
  public let eps: Float
  public let weight: Parameter
  public let bias: Parameter

  public init(size: Int, eps: Float = 1e-5) {
    self.eps = eps
    weight = Parameter(.ones([size]))
    bias = Parameter(.zeros([size]))
    super.init()
    register("weight", weight)
    register("bias", bias)
  }

  public func callAsFunction(_ x: Tensor) -> Tensor {
    Tensor.layerNorm(x, weight: weight.value, bias: bias.value, eps: eps)
  }
}
