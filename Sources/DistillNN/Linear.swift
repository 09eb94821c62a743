/// `y = x W^T + b`, PyTorch's `nn.Linear`: `weight` is `[outputSize, inputSize]`.
public final class Linear: Module, UnaryLayer {
  public let weight: Parameter
  public let bias: Parameter?

  /// Initialised as PyTorch does: both tensors uniform in `±1/sqrt(inputSize)`.
  public init(inputSize: Int, outputSize: Int, bias: Bool = true, using rng: inout RandomGenerator) {
    let bound = 1 / Float(inputSize).squareRoot()
    weight = Parameter(
      Tensor.uniform([outputSize, inputSize], low: -bound, high: bound, using: &rng), isProductWeight: true)
    self.bias = bias ? Parameter(Tensor.uniform([outputSize], low: -bound, high: bound, using: &rng)) : nil
    super.init()
    register("weight", weight)
    if let b = self.bias { register("bias", b) }
  }

  public var inputSize: Int { weight.shape[1] }
  public var outputSize: Int { weight.shape[0] }

  public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.linear(x, weight: weight.value, bias: bias?.value) }
}
