import DistillCore

/// The learned perceptual image patch similarity of Zhang et al. (2018), computed exactly as
/// the PyPI `lpips` package 0.1.4 computes it (`lpips.LPIPS(net=..., version="0.1")`):
///
/// 1. both images, `[N, 3, H, W]` in `[-1, 1]`, are shifted and scaled (`scaling_layer`);
/// 2. a trunk (AlexNet, VGG16 or SqueezeNet 1.1) gives feature maps at its tapped layers;
/// 3. each map is divided by its norm over channels at every pixel, plus `1e-10`;
/// 4. the squared difference of the two is weighted per channel by a 1x1 convolution
///    without bias (`lin<l>.model.1.weight`), averaged over pixels and summed over layers.
///
/// The weights use the package's state-dict names (`net.slice1.0.weight`,
/// `lin0.model.1.weight`, `scaling_layer.shift`, ...); see docs/lpips.md to convert them.
/// The network is frozen: the distance is differentiable with respect to both images, and no
/// gradient reaches the weights.
///
/// ```swift
/// let lpips = try LPIPS.load(network: .alex, weightsPath: "lpips-alex.safetensors")
/// let d = lpips(generated, target)  // [N]
/// d.mean().backward()               // gradients reach `generated`
/// ```
public final class LPIPS: Module {
  /// The trunk whose features LPIPS compares.
  public enum Network: String, CaseIterable, Sendable {
    case alex, vgg, squeeze

    var slices: [[FeatureLayer]] {
      switch self {
      case .alex: return AlexNetFeatures.slices
      case .vgg: return VGG16Features.slices
      case .squeeze: return SqueezeNetFeatures.slices
      }
    }

    /// The channels of each tapped layer.
    public var tapChannels: [Int] {
      slices.map { slice in
        var channels = 0
        for layer in slice {
          if case .conv(_, _, let output, _, _, _) = layer { channels = output }
          if case .fire(_, _, _, let expand) = layer { channels = 2 * expand }
        }
        return channels
      }
    }

    /// Every state-dict key with its shape, in the package's names.
    public var parameterShapes: [(key: String, shape: [Int])] {
      var result: [(key: String, shape: [Int])] = [("scaling_layer.shift", [1, 3, 1, 1]), ("scaling_layer.scale", [1, 3, 1, 1])]
      for (i, slice) in slices.enumerated() {
        for layer in slice { result += layer.parameterShapes.map { ("net.slice\(i + 1).\($0.key)", $0.shape) } }
      }
      for (l, channels) in tapChannels.enumerated() { result.append(("lin\(l).model.1.weight", [1, channels, 1, 1])) }
      return result
    }

    /// The smallest image side the trunk accepts: below it a pooling window does not fit.
    public var minimumSide: Int {
      func fits(_ side: Int) -> Bool {
        var s = side
        for layer in slices.joined() {
          guard let next = layer.outputSide(s), next >= 1 else { return false }
          s = next
        }
        return true
      }
      return (1...).first(where: fits)!
    }
  }

  /// The package's `normalize_tensor` epsilon, added to the norm (not inside the root).
  public static let epsilon: Float = 1e-10

  public let network: Network
  let scalingLayer: ScalingLayer
  let net: FeatureStack
  let lins: [NetLinLayer]

  /// An LPIPS network with random trunk and head weights (seeded), for tests and benchmarks.
  ///
  /// Its distances are not LPIPS: use ``load(network:weightsPath:)`` with the trained weights.
  public init(network: Network, seed: UInt64 = 0) {
    var rng = RandomGenerator(seed: seed)
    self.network = network
    scalingLayer = ScalingLayer()
    net = FeatureStack(network.slices, using: &rng)
    lins = network.tapChannels.map { NetLinLayer(channels: $0, using: &rng) }
    super.init()
    register("scaling_layer", scalingLayer)
    register("net", net)
    for (l, lin) in lins.enumerated() { register("lin\(l)", lin) }
    eval()
  }

  /// The distance between each pair of images: `a` and `b` are `[N, 3, H, W]` in `[-1, 1]`
  /// with sides of at least ``Network/minimumSide``; the result is `[N]`.
  public func callAsFunction(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.shape == b.shape, "LPIPS compares images of one shape, got \(a.shape) and \(b.shape)")
    precondition(a.rank == 4 && a.shape[1] == 3, "LPIPS needs [N, 3, H, W] images, got \(a.shape)")
    let featuresA = net.features(scalingLayer(a))
    let featuresB = net.features(scalingLayer(b))
    var total = Self.layerDistance(featuresA[0], featuresB[0], weight: lins[0].weight)
    for l in 1..<lins.count {
      total = total + Self.layerDistance(featuresA[l], featuresB[l], weight: lins[l].weight)
    }
    return total
  }
}

/// `(x - shift) / scale`: ImageNet's mean and deviation in `[-1, 1]` units. The values are
/// the package's constants and are also read from its state dict.
final class ScalingLayer: Module {
  let shift = Parameter(Tensor(shape: [1, 3, 1, 1], scalars: [-0.030, -0.088, -0.188]))
  let scale = Parameter(Tensor(shape: [1, 3, 1, 1], scalars: [0.458, 0.448, 0.450]))

  override init() {
    super.init()
    register("shift", shift)
    register("scale", scale)
  }

  func callAsFunction(_ x: Tensor) -> Tensor { (x - shift.value.detached()) / scale.value.detached() }
}

/// The package's `NetLinLayer`: `Sequential(Dropout(), Conv2d(C, 1, 1, bias=False))`, so its
/// one weight is `model.1.weight`, `[1, C, 1, 1]`. Dropout is inactive in evaluation.
final class NetLinLayer: Module {
  let conv: Conv2d

  init(channels: Int, using rng: inout RandomGenerator) {
    conv = Conv2d(inputChannels: channels, outputChannels: 1, kernel: 1, bias: false, using: &rng)
    // The trained heads are non-negative; so are the random ones.
    conv.weight.value = conv.weight.value.abs()
    super.init()
    let model = Module()
    model.register("1", conv)
    register("model", model)
  }

  /// The per-channel weights, `[C]`, cut from the graph.
  var weight: Tensor { conv.weight.value.detached().reshaped([conv.weight.shape[1]]) }
}
