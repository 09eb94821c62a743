/// A 2-D convolution, PyTorch's `nn.Conv2d` (no groups or dilation): `weight` is
/// `[outputChannels, inputChannels, kernel, kernel]`, `bias` is `[outputChannels]`.
public final class Conv2d: Module, UnaryLayer {
  public let weight: Parameter
  public let bias: Parameter?
  public let stride: Int
  public let padding: Int

  /// Initialised as PyTorch does: uniform in `±1/sqrt(inputChannels * kernel * kernel)`.
  public init(
    inputChannels: Int, outputChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
    using rng: inout RandomGenerator
  ) {
    let bound = 1 / Float(inputChannels * kernel * kernel).squareRoot()
    weight = Parameter(
      Tensor.uniform([outputChannels, inputChannels, kernel, kernel], low: -bound, high: bound, using: &rng),
      isProductWeight: true)
    self.bias = bias ? Parameter(Tensor.uniform([outputChannels], low: -bound, high: bound, using: &rng)) : nil
    self.stride = stride
    self.padding = padding
    super.init()
    register("weight", weight)
    if let b = self.bias { register("bias", b) }
  }

  public func callAsFunction(_ x: Tensor) -> Tensor {
    Tensor.conv2d(x, weight: weight.value, bias: bias?.value, stride: stride, padding: padding)
  }

  /// `self(input(inputs))`; inside a ``withActivationRecompute(_:_:)`` scope of `selective`,
  /// without keeping the convolution's input for the backward pass, which computes it again
  /// from `inputs` (``Tensor/conv2d(recomputing:parameters:_:weight:bias:stride:padding:)``).
  /// `input` should be cheap next to the convolution (a norm and activation, a concatenation,
  /// an upsampling) and read no parameters but those of `module`.
  public func callAsFunction(
    recomputing inputs: [Tensor], from module: Module? = nil, _ input: @escaping ([Tensor]) -> Tensor
  ) -> Tensor {
    guard ActivationRecompute.current == .selective else { return self(input(inputs)) }
    return Tensor.conv2d(
      recomputing: inputs, parameters: module?.parameters().map(\.value) ?? [], input, weight: weight.value,
      bias: bias?.value, stride: stride, padding: padding)
  }
}
