/// Layers applied in order, registered as `"0"`, `"1"`, ... as PyTorch's `nn.Sequential` does.
open class Sequential: Module, UnaryLayer {
  public let layers: [any UnaryLayer]

  public init(_ layers: [any UnaryLayer]) {
    self.layers = layers
    super.init()
    for (i, layer) in layers.enumerated() { register(String(i), layer) }
  }

  public func callAsFunction(_ x: Tensor) -> Tensor { layers.reduce(x) { $1($0) } }
}

/// A multilayer perceptron: `depth` hidden layers of `width` units with `activation` between
/// them, and a linear output. Keys match `nn.Sequential(Linear, act, ..., Linear)`
/// (`0.weight`, `2.weight`, ...).
public final class MLP: Sequential {
  public init(
    inputSize: Int, width: Int, depth: Int, outputSize: Int, activation: Activation = .silu,
    using rng: inout RandomGenerator
  ) {
    precondition(depth >= 1, "an MLP needs at least one hidden layer")
    var layers: [any UnaryLayer] = []
    var size = inputSize
    for _ in 0..<depth {
      layers.append(Linear(inputSize: size, outputSize: width, using: &rng))
      layers.append(ActivationLayer(activation))
      size = width
    }
    layers.append(Linear(inputSize: size, outputSize: outputSize, using: &rng))
    super.init(layers)
  }

  /// The activations after each hidden layer's nonlinearity, first to last (`depth` tensors).
  public func hiddenActivations(_ x: Tensor) -> [Tensor] {
    var h = x
    var hidden: [Tensor] = []
    for layer in layers.dropLast() {
      h = layer(h)
      if layer is ActivationLayer { hidden.append(h) }
    }
    return hidden
  }
}
