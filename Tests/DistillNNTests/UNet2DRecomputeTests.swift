import DistillTestSupport
import Testing

@testable import DistillCore
@testable import DistillNN

/// `withActivationRecompute(.blocks)` around a UNet2D training step: each resnet and attention
/// block runs through `Tensor.recomputing`; with `.selective`, each convolution of a norm and
/// activation, a concatenation, an upsampling or a pad runs through
/// `Tensor.conv2d(recomputing:)` and each attention block through `Tensor.recomputing`. Either
/// way the step computes exactly what it computes without.
@Suite struct UNet2DRecomputeTests {
  /// Down, AttnDown, Down with two resnets per block, a mid block with attention: skips reach
  /// the up blocks, and the time embedding feeds every resnet. `variant` 1 pads before its
  /// downsampling convolutions (as the DDPM CIFAR-10 layout of `bench`'s w5), 2 applies the
  /// time embedding as scale and shift.
  static func unet(variant: Int = 0) -> UNet2DModel {
    var rng = RandomGenerator(seed: 5)
    var config = UNet2DConfig(
      sampleSize: 16, downBlocks: [.down, .attention, .down], upBlocks: [.up, .attention, .up],
      blockOutChannels: [8, 16, 16], layersPerBlock: 2, normGroups: 4, attentionHeadDimension: 8)
    if variant == 1 { config.downsamplePadding = 0 }
    if variant == 2 { config.scaleShift = true }
    return UNet2DModel(config: config, using: &rng)
  }

  /// The loss and its gradients (every parameter, and the input) of one denoising step.
  static func step(
    _ unet: UNet2DModel, _ mode: ActivationRecompute, precision: ComputePrecision = .fp32
  ) -> (
    loss: [Float], grads: [[Float]], nodes: Int
  ) {
    var rng = RandomGenerator(seed: 9)
    let x = Tensor.normal([2, 3, 16, 16], mean: 0, std: 1, using: &rng).requiringGrad()
    let target = Tensor.normal([2, 3, 16, 16], mean: 0, std: 1, using: &rng)
    unet.zeroGrad()
    let loss = withComputePrecision(precision) {
      withActivationRecompute(mode) {
        let loss = Tensor.mseLoss(unet(x, timesteps: [10, 700]), target)
        let nodes = Tensor.topologicalOrder(from: loss.node!).filter { !$0.isLeaf }.count
        loss.backward()
        return (loss, nodes)
      }
    }
    return (loss.0.scalars, unet.parameters().map { $0.grad!.scalars } + [x.grad!.scalars], loss.1)
  }

  @Test func gradientsAreBitIdenticalWithBlockRecomputation() {
    let unet = Self.unet()
    let direct = Self.step(unet, .none)
    let recomputed = Self.step(unet, .blocks)
    // The blocks' intermediates are not in the recorded graph.
    #expect(
      recomputed.nodes < direct.nodes / 4, "\(recomputed.nodes) nodes against \(direct.nodes)")
    #expect(direct.loss == recomputed.loss)
    #expect(direct.grads.count == recomputed.grads.count)
    let differing = zip(direct.grads, recomputed.grads).filter { $0 != $1 }.count
    #expect(differing == 0, "\(differing) of \(direct.grads.count) gradients differ")
  }

  @Test(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
  func bf16GradientsAreBitIdenticalWithBlockRecomputation() {
    let unet = Self.unet()
    let direct = Self.step(unet, .none, precision: .bf16)
    let recomputed = Self.step(unet, .blocks, precision: .bf16)
    #expect(direct.loss == recomputed.loss)
    #expect(zip(direct.grads, recomputed.grads).allSatisfy { $0 == $1 })
  }

  @Test(arguments: [0, 1, 2])
  func gradientsAreBitIdenticalWithSelectiveRecomputation(variant: Int) {
    let unet = Self.unet(variant: variant)
    let direct = Self.step(unet, .none)
    let recomputed = Self.step(unet, .selective)
    // Norms, activations, concatenations and the attention blocks' ops are not in the graph;
    // the residual blocks' convolutions and sums are.
    #expect(
      recomputed.nodes < direct.nodes * 2 / 3, "\(recomputed.nodes) nodes against \(direct.nodes)")
    #expect(recomputed.nodes > Self.step(unet, .blocks).nodes)
    #expect(direct.loss == recomputed.loss)
    #expect(direct.grads.count == recomputed.grads.count)
    let differing = zip(direct.grads, recomputed.grads).filter { $0 != $1 }.count
    #expect(differing == 0, "\(differing) of \(direct.grads.count) gradients differ")
  }

  @Test(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"), arguments: [0, 1])
  func bf16GradientsAreBitIdenticalWithSelectiveRecomputation(variant: Int) {
    let unet = Self.unet(variant: variant)
    let direct = Self.step(unet, .none, precision: .bf16)
    let recomputed = Self.step(unet, .selective, precision: .bf16)
    #expect(direct.loss == recomputed.loss)
    #expect(zip(direct.grads, recomputed.grads).allSatisfy { $0 == $1 })
  }

  @Test(arguments: [ActivationRecompute.blocks, .selective])
  func inferenceIgnoresTheMode(_ mode: ActivationRecompute) {
    let unet = Self.unet()
    var rng = RandomGenerator(seed: 1)
    let x = Tensor.normal([1, 3, 16, 16], mean: 0, std: 1, using: &rng)
    let plain = withoutGradients { unet(x, timesteps: [3]) }
    let scoped = withActivationRecompute(mode) { withoutGradients { unet(x, timesteps: [3]) } }
    #expect(plain.scalars == scoped.scalars)
  }
}

/// The same for the text-conditional UNet (sd-tiny's): resnets and transformers recomputed,
/// gradients for the parameters, the latents and the text encoder's hidden states unchanged.
@Suite struct UNet2DConditionRecomputeTests {
  @Test func gradientsAreBitIdenticalWithBlockRecomputation() throws {
    let unet = try UNet2DConditionModel.load(folder: sdTinyFixture + "/unet")
    let io = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/io.safetensors")
    let x = try io.tensor("unet_sample").requiringGrad()
    let context = try io.tensor("unet_encoder_hidden_states").requiringGrad()
    let timesteps = try io.tensor("unet_timestep").scalars
    func step(_ mode: ActivationRecompute) -> (loss: [Float], grads: [[Float]], nodes: Int) {
      unet.zeroGrad()
      x.zeroGrad()
      context.zeroGrad()
      let (loss, nodes) = withActivationRecompute(mode) {
        let loss = unet(x, timesteps: timesteps, encoderHiddenStates: context).square().mean()
        let nodes = Tensor.topologicalOrder(from: loss.node!).filter { !$0.isLeaf }.count
        loss.backward()
        return (loss, nodes)
      }
      return (
        loss.scalars,
        unet.parameters().map { $0.grad!.scalars } + [x.grad!.scalars, context.grad!.scalars], nodes
      )
    }
    let direct = step(.none)
    let recomputed = step(.blocks)
    #expect(
      recomputed.nodes < direct.nodes / 4, "\(recomputed.nodes) nodes against \(direct.nodes)")
    #expect(direct.loss == recomputed.loss)
    let differing = zip(direct.grads, recomputed.grads).filter { $0 != $1 }.count
    #expect(differing == 0, "\(differing) of \(direct.grads.count) gradients differ")
    // Selective: the resnets' norms, activations and concatenations recomputed, the
    // transformers whole.
    let selective = step(.selective)
    #expect(selective.nodes < direct.nodes / 2, "\(selective.nodes) nodes against \(direct.nodes)")
    #expect(direct.loss == selective.loss)
    let differingSelective = zip(direct.grads, selective.grads).filter { $0 != $1 }.count
    #expect(differingSelective == 0, "\(differingSelective) of \(direct.grads.count) gradients differ")
  }
}

/// `Tensor.conv2d(recomputing:)` on its own: the values and gradients of the direct
/// composition, and the sum's rule keeps neither operand's buffer.
@Suite struct ConvRecomputingTests {
  @Test func givesTheDirectCompositionsGradients() {
    var rng = RandomGenerator(seed: 3)
    let x = Tensor.normal([2, 8, 6, 6], mean: 0, std: 1, using: &rng).requiringGrad()
    let gamma = Tensor.normal([8], mean: 1, std: 0.1, using: &rng).requiringGrad()
    let beta = Tensor.normal([8], mean: 0, std: 0.1, using: &rng).requiringGrad()
    let weight = Tensor.normal([4, 8, 3, 3], mean: 0, std: 0.2, using: &rng).requiringGrad()
    let bias = Tensor.normal([4], mean: 0, std: 0.1, using: &rng).requiringGrad()
    let target = Tensor.normal([2, 4, 6, 6], mean: 0, std: 1, using: &rng)
    let input: ([Tensor]) -> Tensor = {
      Tensor.groupNormSiLU($0[0], groups: 2, weight: gamma, bias: beta, eps: 1e-6)
    }
    func run(_ recompute: Bool) -> [[Float]] {
      for t in [x, gamma, beta, weight, bias] { t.zeroGrad() }
      let y =
        recompute
        ? Tensor.conv2d(
          recomputing: [x], parameters: [gamma, beta], input, weight: weight, bias: bias, padding: 1)
        : Tensor.conv2d(input([x]), weight: weight, bias: bias, padding: 1)
      // x is read again after the convolution, as a residual block reads its input.
      let loss = Tensor.mseLoss(y + x.sliced(axis: 1, 0..<4), target)
      loss.backward()
      return [loss.scalars] + [x, gamma, beta, weight, bias].map { $0.grad!.scalars }
    }
    #expect(run(false) == run(true))
  }

  @Test func sumsDoNotKeepTheirOperands() {
    var rng = RandomGenerator(seed: 4)
    let x = Tensor.normal([4, 4], mean: 0, std: 1, using: &rng).requiringGrad()
    weak var operand: TensorStorage?
    var y: Tensor
    do {
      let a = x * 2
      operand = a.storage
      y = (a + x) - x
    }
    #expect(operand == nil, "the sum's rule keeps its operand alive")
    y.sum().backward()
    #expect(x.grad!.scalars == Array(repeating: 2, count: 16))
  }
}
