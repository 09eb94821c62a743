/// A lookup table of vectors, PyTorch's `nn.Embedding`: `weight` is `[count, dimension]`.
public final class Embedding: Module {
  public let weight: Parameter

  /// Initialised from a standard normal, as PyTorch does.
  public init(count: Int, dimension: Int, using rng: inout RandomGenerator) {
    weight = Parameter(Tensor.normal([count, dimension], mean: 0, std: 1, using: &rng))
    super.init()
    register("weight", weight)
  }

  /// The rows for `indices`: `[indices.count, dimension]`.
  public func callAsFunction(_ indices: [Int]) -> Tensor { weight.value.gatheringRows(indices) }
}
