import DistillCore

/// One step of a torchvision `features` stack, as LPIPS slices it. Each convolution is
/// followed by a ReLU (every trunk LPIPS uses has one after each conv), so the ReLU entries
/// of torchvision's stacks are implied and only layers with weights carry their index.
enum FeatureLayer: Sendable {
  /// `features[index]`: `nn.Conv2d(input, output, kernel, stride, padding)`, then ReLU.
  case conv(index: Int, input: Int, output: Int, kernel: Int, stride: Int = 1, padding: Int = 0)
  /// `nn.MaxPool2d(kernel, stride, ceil_mode: ceilMode)`.
  case maxPool(kernel: Int, stride: Int, ceilMode: Bool = false)
  /// `features[index]`: torchvision's SqueezeNet `Fire(input, squeeze, expand, expand)`.
  case fire(index: Int, input: Int, squeeze: Int, expand: Int)
}

extension FeatureLayer {
  /// The state-dict keys and shapes this layer contributes, relative to its slice.
  var parameterShapes: [(key: String, shape: [Int])] {
    switch self {
    case .conv(let index, let input, let output, let kernel, _, _):
      return [("\(index).weight", [output, input, kernel, kernel]), ("\(index).bias", [output])]
    case .maxPool:
      return []
    case .fire(let index, let input, let squeeze, let expand):
      return [
        ("\(index).squeeze.weight", [squeeze, input, 1, 1]), ("\(index).squeeze.bias", [squeeze]),
        ("\(index).expand1x1.weight", [expand, squeeze, 1, 1]), ("\(index).expand1x1.bias", [expand]),
        ("\(index).expand3x3.weight", [expand, squeeze, 3, 3]), ("\(index).expand3x3.bias", [expand]),
      ]
    }
  }

  /// The spatial side after this layer for an input side `side`, or `nil` when the input is
  /// too small for it.
  func outputSide(_ side: Int) -> Int? {
    switch self {
    case .conv(_, _, _, let kernel, let stride, let padding):
      return side + 2 * padding >= kernel ? (side + 2 * padding - kernel) / stride + 1 : nil
    case .maxPool(let kernel, let stride, let ceilMode):
      let out = Tensor.maxPool2dOutputSide(side, kernel: kernel, stride: stride, ceilMode: ceilMode)
      return out >= 1 ? out : nil
    case .fire:
      return side
    }
  }
}

/// A trunk cut into the slices LPIPS taps (`net.slice1`, `net.slice2`, ...), frozen: the
/// forward pass reads the weights detached, as the `lpips` package sets `requires_grad=False`,
/// so gradients flow to the images only.
final class FeatureStack: Module {
  private let slices: [[FeatureStep]]

  init(_ layout: [[FeatureLayer]], using rng: inout RandomGenerator) {
    var slices: [[FeatureStep]] = []
    var modules: [Module] = []
    for layers in layout {
      let slice = Module()
      var steps: [FeatureStep] = []
      for layer in layers {
        switch layer {
        case .conv(let index, let input, let output, let kernel, let stride, let padding):
          let conv = Conv2d(
            inputChannels: input, outputChannels: output, kernel: kernel, stride: stride, padding: padding, using: &rng)
          slice.register(String(index), conv)
          steps.append(.conv(conv))
        case .maxPool(let kernel, let stride, let ceilMode):
          steps.append(.maxPool(kernel: kernel, stride: stride, ceilMode: ceilMode))
        case .fire(let index, let input, let squeeze, let expand):
          let fire = Fire(input: input, squeeze: squeeze, expand: expand, using: &rng)
          slice.register(String(index), fire)
          steps.append(.fire(fire))
        }
      }
      slices.append(steps)
      modules.append(slice)
    }
    self.slices = slices
    super.init()
    for (i, slice) in modules.enumerated() { register("slice\(i + 1)", slice) }
  }

  /// The output of every slice, in order.
  func features(_ x: Tensor) -> [Tensor] {
    var h = x
    var taps: [Tensor] = []
    for slice in slices {
      for step in slice { h = step(h) }
      taps.append(h)
    }
    return taps
  }
}

/// A step of a ``FeatureStack`` with its weights.
private enum FeatureStep {
  case conv(Conv2d)
  case maxPool(kernel: Int, stride: Int, ceilMode: Bool)
  case fire(Fire)

  func callAsFunction(_ x: Tensor) -> Tensor {
    switch self {
    case .conv(let conv): return frozenConvolution(conv, x).relu()
    case .maxPool(let kernel, let stride, let ceilMode): return x.maxPool2d(kernel: kernel, stride: stride, ceilMode: ceilMode)
    case .fire(let fire): return fire(x)
    }
  }
}

/// torchvision's SqueezeNet `Fire`: a 1x1 squeeze, then 1x1 and 3x3 expansions side by side,
/// each followed by ReLU; keys `squeeze`, `expand1x1`, `expand3x3`.
final class Fire: Module {
  let squeeze: Conv2d
  let expand1x1: Conv2d
  let expand3x3: Conv2d

  init(input: Int, squeeze: Int, expand: Int, using rng: inout RandomGenerator) {
    self.squeeze = Conv2d(inputChannels: input, outputChannels: squeeze, kernel: 1, using: &rng)
    expand1x1 = Conv2d(inputChannels: squeeze, outputChannels: expand, kernel: 1, using: &rng)
    expand3x3 = Conv2d(inputChannels: squeeze, outputChannels: expand, kernel: 3, padding: 1, using: &rng)
    super.init()
    register("squeeze", self.squeeze)
    register("expand1x1", expand1x1)
    register("expand3x3", expand3x3)
  }

  func callAsFunction(_ x: Tensor) -> Tensor {
    let s = frozenConvolution(squeeze, x).relu()
    return Tensor.concat([frozenConvolution(expand1x1, s).relu(), frozenConvolution(expand3x3, s).relu()], axis: 1)
  }
}

/// `conv(x)` with the weights cut from the graph, so no weight gradient is computed.
func frozenConvolution(_ conv: Conv2d, _ x: Tensor) -> Tensor {
  Tensor.conv2d(
    x, weight: conv.weight.value.detached(), bias: conv.bias?.value.detached(), stride: conv.stride,
    padding: conv.padding)
}
