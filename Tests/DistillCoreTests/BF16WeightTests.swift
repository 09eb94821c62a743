import DistillTestSupport
import Testing

@testable import DistillCore

/// Weights held in bfloat16 (``Tensor/bfloat16Rounded()``, ``Module/holdProductWeights(in:)``):
/// the rounding, the products that take such a weight (forward and input gradient, against
/// float32 arithmetic on operands rounded to bfloat16, as `BF16Tests` checks the bf16 scope),
/// and the parameter rules (no gradient, no optimizer, loads keep the format).
@Suite(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
struct BF16WeightTests {
  @Test func roundingIsToNearestEvenAndWideningIsExact() {
    let values: [Float] = [
      0, -0, 1, -1, 1.00390625, 1.01171875, 1.0078125, 3.14159265, -2.7182817, 1e-40, 3.4e38, .infinity,
      -.infinity, 65504, 1.0 / 3,
    ]
    let held = Tensor(values).bfloat16Rounded()
    #expect(held.isBFloat16 && !held.requiresGrad)
    #expect(held.storageBytes == 2 * values.count && Tensor(values).storageBytes == 4 * values.count)
    let widened = held.float32()
    #expect(!widened.isBFloat16)
    // As vcvtneps2bf16 rounds (and the bf16 products round their operands): a subnormal
    // (1e-40) becomes zero.
    let expected = values.map { $0.isSubnormal ? Float(0) : roundedToBF16($0) }
    #expect(widened.scalars.map(\.bitPattern) == expected.map(\.bitPattern))
    // Rounding a held tensor again changes nothing; a NaN stays a NaN.
    #expect(held.bfloat16Rounded().float32().scalars == widened.scalars)
    #expect(Tensor([.nan]).bfloat16Rounded().float32().item.isNaN)
  }

  /// `y = x W^T + b` and its input gradient with `W` held in bfloat16, on both product routes
  /// (a tall product packs the weight whole, a wide one per panel; 300 is an odd depth, 129
  /// outputs a partial panel) and either kernel: the forward product widens the halves as it
  /// packs them.
  @Test(arguments: BF16Kernel.allCases, [[64, 40, 24], [3, 300, 70], [200, 33, 129], [40, 520, 33]])
  func linearMatchesRoundedOperands(kernel: BF16Kernel, sizes: [Int]) {
    BF16Kernel.$current.withValue(kernel) { linearMatchesRoundedOperands(sizes) }
  }

  func linearMatchesRoundedOperands(_ sizes: [Int]) {
    let (rows, inputs, outputs) = (sizes[0], sizes[1], sizes[2])
    let x = testTensor([rows, inputs], seed: 71)
    let w = testTensor([outputs, inputs], seed: 72)
    let b = testTensor([outputs], seed: 73)
    let upstream = roundedToBF16(testTensor([rows, outputs], seed: 74))
    func run(_ w: Tensor) -> (Tensor, Tensor) {
      var y = Tensor(scalar: 0)
      let (_, grads) = valueWithGradients(at: [x]) { p in
        y = Tensor.linear(p[0], weight: w, bias: b)
        return (y * upstream).sum()
      }
      return (y.detached(), grads[0])
    }
    let (y, dx) = run(w.bfloat16Rounded())
    let (yRounded, dxRounded) = withoutGradients { () -> (Tensor, Tensor) in
      (
        Tensor.linear(roundedToBF16(x), weight: roundedToBF16(w), bias: b),
        upstream.matmul(roundedToBF16(w))
      )
    }
    let label = "\(BF16Kernel.current) \(rows)x\(inputs) -> \(outputs)"
    expectClose(y, yRounded, rtol: 1e-5, atol: 1e-5 * Float(inputs).squareRoot(), "\(label) forward")
    expectClose(dx, dxRounded, rtol: 1e-5, atol: 1e-5 * Float(outputs).squareRoot(), "\(label) input gradient")
    // The same arithmetic as the bf16 scope on the rounded float32 weight, to the bit.
    let (yScoped, dxScoped) = withComputePrecision(.bf16) { run(roundedToBF16(w)) }
    #expect(y.scalars == yScoped.scalars && dx.scalars == dxScoped.scalars, "\(label)")
  }

  /// Convolutions and transposed convolutions with the weight held in bfloat16, on every
  /// route: direct (32x32 and pointwise planes), small planes and stride 2 (implicit products
  /// of the widened weight), odd channel counts; on
  /// either kernel (``BF16Kernel``): `dot` reads the bfloat16 values as they are, `rounded`
  /// widens them a block of output channels at a time as it packs them.
  @Test(arguments: BF16Kernel.allCases, [
    ([2, 8, 32, 32], [16, 8, 3, 3], 1, 1),
    ([4, 16, 4, 4], [24, 16, 3, 3], 1, 1),
    ([2, 8, 16, 16], [8, 8, 3, 3], 2, 1),
    ([2, 16, 8, 8], [8, 16, 1, 1], 1, 0),
    ([3, 5, 6, 6], [7, 5, 3, 3], 1, 1),
  ])
  func convolutionsMatchRoundedOperands(kernel: BF16Kernel, shapes: ([Int], [Int], Int, Int)) {
    BF16Kernel.$current.withValue(kernel) { convolutionsMatchRoundedOperands(shapes) }
  }

  func convolutionsMatchRoundedOperands(_ shapes: ([Int], [Int], Int, Int)) {
    let (xShape, wShape, stride, padding) = shapes
    let x = testTensor(xShape, seed: 81)
    let w = testTensor(wShape, seed: 82)
    let b = testTensor([wShape[0]], seed: 83)
    let probe = withoutGradients { Tensor.conv2d(x, weight: w, stride: stride, padding: padding) }
    let upstream = roundedToBF16(testTensor(probe.shape, seed: 84))
    func run(_ x: Tensor, _ w: Tensor, _ precision: ComputePrecision) -> (Tensor, Tensor) {
      withComputePrecision(precision) {
        var y = Tensor(scalar: 0)
        let (_, grads) = valueWithGradients(at: [x]) { p in
          y = Tensor.conv2d(p[0], weight: w, bias: b, stride: stride, padding: padding)
          return (y * upstream).sum()
        }
        return (y.detached(), grads[0])
      }
    }
    let (y, dx) = run(x, w.bfloat16Rounded(), .fp32)
    let (yRounded, dxRounded) = run(roundedToBF16(x), roundedToBF16(w), .fp32)
    let depth = Float(wShape[1] * wShape[2] * wShape[3])
    let label = "\(BF16Kernel.current) x \(xShape) w \(wShape)"
    expectClose(y, yRounded, rtol: 1e-5, atol: 1e-5 * depth.squareRoot(), "\(label) forward")
    let fanOut = Float(wShape[0] * wShape[2] * wShape[3])
    expectClose(dx, dxRounded, rtol: 1e-5, atol: 1e-5 * fanOut.squareRoot(), "\(label) input gradient")
    // A weight held in bfloat16 convolves on the kernel around it: to the bit the bf16 scope's
    // arithmetic on that kernel with the rounded float32 weight.
    let (yScoped, dxScoped) = run(x, roundedToBF16(w), .bf16)
    #expect(y.scalars == yScoped.scalars && dx.scalars == dxScoped.scalars, "\(label)")

    // The transposed convolution by the same weight read as [Cin, Cout, kh, kw]: its forward
    // is the input gradient above, its input gradient the forward.
    guard stride == 1 else { return }
    let transposedWeight = w.reshaped([wShape[0], wShape[1], wShape[2], wShape[3]])
    func runTransposed(_ w: Tensor, _ precision: ComputePrecision) -> (Tensor, Tensor) {
      withComputePrecision(precision) {
        var y = Tensor(scalar: 0)
        let (_, grads) = valueWithGradients(at: [upstream]) { p in
          y = Tensor.convTranspose2d(p[0], weight: w, stride: stride, padding: padding)
          return (y * roundedToBF16(x)).sum()
        }
        return (y.detached(), grads[0])
      }
    }
    let (t, dt) = runTransposed(transposedWeight.bfloat16Rounded(), .fp32)
    let (tScoped, dtScoped) = runTransposed(roundedToBF16(transposedWeight), .bf16)
    #expect(t.scalars == tScoped.scalars && dt.scalars == dtScoped.scalars, "\(label) transposed")
    expectClose(t, dxRounded, rtol: 1e-5, atol: 1e-5 * fanOut.squareRoot(), "\(label) transposed forward")
  }

  /// A module with a product weight and a bias, as `Linear` registers them.
  final class Affine: Module {
    let weight: Parameter
    let bias: Parameter
    init(seed: UInt64) {
      weight = Parameter(testTensor([6, 10], seed: seed), isProductWeight: true)
      bias = Parameter(testTensor([6], seed: seed + 1))
      super.init()
      register("weight", weight)
      register("bias", bias)
    }
    func callAsFunction(_ x: Tensor) -> Tensor { Tensor.linear(x, weight: weight.value, bias: bias.value) }
  }

  @Test func heldWeightsHalveTheirBytesTakeNoGradientAndStillPassOneToTheInput() {
    let module = Affine(seed: 3)
    #expect(module.parameterBytes == 4 * (60 + 6))
    module.holdProductWeights(in: .bf16)
    #expect(module.weight.isBFloat16 && !module.bias.isBFloat16)
    #expect(module.parameterBytes == 2 * 60 + 4 * 6)
    #expect(!module.weight.value.requiresGrad && module.bias.value.requiresGrad)
    let x = testTensor([4, 10], seed: 9).requiringGrad()
    module(x).square().sum().backward()
    #expect(module.weight.grad == nil && module.bias.grad != nil && x.grad != nil)
    // Back to float32: the rounded values, trainable again.
    module.holdProductWeights(in: .fp32)
    #expect(!module.weight.isBFloat16 && module.weight.value.requiresGrad)
    #expect(module.weight.value.scalars == roundedToBF16(testTensor([6, 10], seed: 3)).scalars)
  }

  @Test func buildingInTheScopeEqualsConvertingAfterwards() {
    let built = withProductWeights(.bf16) { Affine(seed: 5) }
    let converted = Affine(seed: 5)
    converted.holdProductWeights(in: .bf16)
    #expect(built.weight.isBFloat16 && !built.bias.isBFloat16)
    #expect(built.weight.value == converted.weight.value && built.bias.value == converted.bias.value)
    #expect(!Affine(seed: 5).weight.isBFloat16)  // outside the scope
  }

  @Test func loadsKeepTheFormatAndAFloat32ParameterRefusesHeldWeights() throws {
    let held = Affine(seed: 1)
    held.holdProductWeights(in: .bf16)
    let source = Affine(seed: 2)
    try held.load(source.stateDict())
    #expect(held.weight.isBFloat16)
    #expect(held.weight.value.scalars == roundedToBF16(source.weight.value).scalars)
    #expect(held.bias.value.scalars == source.bias.value.scalars)
    held.weight.assign(testTensor([6, 10], seed: 7))
    #expect(held.weight.isBFloat16 && held.weight.value.scalars == roundedToBF16(testTensor([6, 10], seed: 7)).scalars)

    let copy = Affine(seed: 4)
    let before = copy.weight.value.scalars
    expectDistillError(containing: ["'weight'", "bfloat16 weights for a float32 parameter"]) {
      try copy.load(held.stateDict())
    }
    #expect(copy.weight.value.scalars == before && !copy.weight.isBFloat16)
  }
}
