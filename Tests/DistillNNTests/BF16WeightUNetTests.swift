import DistillTestSupport
import Testing

@testable import DistillCore
@testable import DistillNN

/// UNets whose product weights are held in bfloat16 (`holdProductWeights(in: .bf16)`): half
/// the weight bytes; inside the bf16 scope, on either kernel, the forward pass and the input
/// gradient are, to the bit, those of the float32 network holding the same rounded weights
/// (every product then rounds its operands in both, and a held weight's products run on the
/// scope's kernel); outside the scope only the products of weights run in bfloat16, close to
/// the float32 network.
@Suite(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
struct BF16WeightUNetTests {
  /// The float32 network, the same holding its product weights in bfloat16, and the float32
  /// network holding the rounded weights.
  static func triple<M: Module>(_ make: () throws -> M) rethrows -> (exact: M, held: M, rounded: M) {
    let (exact, held, rounded) = (try make(), try make(), try make())
    held.holdProductWeights(in: .bf16)
    rounded.holdProductWeights(in: .bf16)
    rounded.holdProductWeights(in: .fp32)
    return (exact, held, rounded)
  }

  /// The output and the input gradient of `(f(x) * upstream).sum()`.
  static func outputAndInputGradient(_ x: Tensor, _ f: (Tensor) -> Tensor) -> (y: [Float], dx: [Float]) {
    var y = Tensor(scalar: 0)
    let (_, grads) = valueWithGradients(at: [x]) { p in
      y = f(p[0])
      return (y * Tensor.full(like: y, 0.5)).sum()
    }
    return (y.scalars, grads[0].scalars)
  }

  /// The largest difference relative to the largest magnitude of `reference`.
  static func relativeError(_ a: [Float], _ reference: [Float]) -> Float {
    let scale = reference.map { Swift.abs($0) }.max()!
    return zip(a, reference).map { Swift.abs($0 - $1) }.max()! / scale
  }

  /// Half the bytes for the product weights, the same for the rest.
  static func expectHalvedWeights(_ exact: Module, _ held: Module) {
    let products = exact.parameters().filter(\.isProductWeight).map(\.value.count).reduce(0, +)
    let others = exact.parameterCount - products
    #expect(products > 10 * others)
    #expect(exact.parameterBytes == 4 * exact.parameterCount)
    #expect(held.parameterBytes == 2 * products + 4 * others)
    let heldFlags = held.parameters().map { ($0.isProductWeight, $0.isBFloat16) }
    #expect(heldFlags.allSatisfy { $0.0 == $0.1 })
  }

  @Test func unet2DModel() {
    let (exact, held, rounded) = Self.triple { UNet2DRecomputeTests.unet() }
    Self.expectHalvedWeights(exact, held)
    var rng = RandomGenerator(seed: 4)
    let x = Tensor.normal([2, 3, 16, 16], mean: 0, std: 1, using: &rng)
    let timesteps: [Float] = [10, 700]
    func scoped(_ unet: UNet2DModel, _ kernel: BF16Kernel) -> (y: [Float], dx: [Float]) {
      BF16Kernel.$current.withValue(kernel) {
        withComputePrecision(.bf16) { Self.outputAndInputGradient(x) { unet($0, timesteps: timesteps) } }
      }
    }
    for kernel in BF16Kernel.allCases {
      let scopedHeld = scoped(held, kernel)
      let scopedRounded = scoped(rounded, kernel)
      #expect(scopedHeld.y == scopedRounded.y && scopedHeld.dx == scopedRounded.dx, "\(kernel)")
    }

    let plainHeld = Self.outputAndInputGradient(x) { held($0, timesteps: timesteps) }
    let plainRounded = Self.outputAndInputGradient(x) { rounded($0, timesteps: timesteps) }
    let plainExact = Self.outputAndInputGradient(x) { exact($0, timesteps: timesteps) }
    // Activations rounded at each product of a weight: within bfloat16's 2^-8 of the float32
    // network on the same rounded weights, and a visible step from it.
    #expect(Self.relativeError(plainHeld.y, plainRounded.y) < 1e-2)
    #expect(Self.relativeError(plainHeld.dx, plainRounded.dx) < 1e-2)
    #expect(Self.relativeError(plainHeld.y, plainRounded.y) > 1e-6)
    #expect(Self.relativeError(plainHeld.y, plainExact.y) < 2e-2)
  }

  /// sd-tiny's UNet (cross-attention, GEGLU, linear and convolutional projections) against its
  /// diffusers float32 output, and the bf16-scope identity with gradients to the latents and
  /// to the text encoder's hidden states (a frozen teacher still passes gradients back).
  @Test func unet2DConditionModel() throws {
    let (exact, held, rounded) = try Self.triple { try UNet2DConditionModel.load(folder: sdTinyFixture + "/unet") }
    Self.expectHalvedWeights(exact, held)
    let io = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/io.safetensors")
    let x = try io.tensor("unet_sample")
    let context = try io.tensor("unet_encoder_hidden_states")
    let timesteps = try io.tensor("unet_timestep").scalars
    let diffusers = try io.tensor("unet_output").scalars
    func run(_ unet: UNet2DConditionModel) -> (y: [Float], dx: [Float], dContext: [Float]) {
      var y = Tensor(scalar: 0)
      let (_, grads) = valueWithGradients(at: [x, context]) { p in
        y = unet(p[0], timesteps: timesteps, encoderHiddenStates: p[1])
        return (y * Tensor.full(like: y, 0.5)).sum()
      }
      return (y.scalars, grads[0].scalars, grads[1].scalars)
    }
    func scoped(_ unet: UNet2DConditionModel, _ kernel: BF16Kernel) -> (y: [Float], dx: [Float], dContext: [Float]) {
      BF16Kernel.$current.withValue(kernel) { withComputePrecision(.bf16) { run(unet) } }
    }
    for kernel in BF16Kernel.allCases {
      let scopedHeld = scoped(held, kernel)
      let scopedRounded = scoped(rounded, kernel)
      #expect(scopedHeld.y == scopedRounded.y, "\(kernel)")
      #expect(scopedHeld.dx == scopedRounded.dx && scopedHeld.dContext == scopedRounded.dContext, "\(kernel)")
    }

    let plainHeld = run(held)
    #expect(Self.relativeError(plainHeld.y, run(rounded).y) < 1e-2)
    #expect(Self.relativeError(plainHeld.y, diffusers) < 2e-2)
    #expect(Self.relativeError(run(exact).y, diffusers) < 1e-4)
    #expect(plainHeld.dContext.contains { $0 != 0 })
  }
}
