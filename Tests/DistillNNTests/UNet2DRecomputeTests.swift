import DistillTestSupport
import Testing

@testable import DistillCore
@testable import DistillNN

/// `withActivationRecompute(.blocks)` around a UNet2D training step: each resnet and attention
/// block runs through `Tensor.recomputing`, and the step computes exactly what it computes
/// without.
@Suite struct UNet2DRecomputeTests {
  /// Down, AttnDown, Down with two resnets per block, a mid block with attention: skips reach
  /// the up blocks, and the time embedding feeds every resnet.
  static func unet() -> UNet2DModel {
    var rng = RandomGenerator(seed: 5)
    let config = UNet2DConfig(
      sampleSize: 16, downBlocks: [.down, .attention, .down], upBlocks: [.up, .attention, .up],
      blockOutChannels: [8, 16, 16], layersPerBlock: 2, normGroups: 4, attentionHeadDimension: 8)
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

  @Test func inferenceIgnoresTheMode() {
    let unet = Self.unet()
    var rng = RandomGenerator(seed: 1)
    let x = Tensor.normal([1, 3, 16, 16], mean: 0, std: 1, using: &rng)
    let plain = withoutGradients { unet(x, timesteps: [3]) }
    let scoped = withActivationRecompute(.blocks) { withoutGradients { unet(x, timesteps: [3]) } }
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
  }
}

/// Attention without gradients over a long sequence goes through in blocks of query rows (its
/// scores never exist whole) and computes what the whole-matrix path computes.
@Suite struct BlockedAttentionTests {
  @Test func blocksOfQueryRowsGiveTheWholeMatrixResult() {
    var rng = RandomGenerator(seed: 2)
    let attention = MultiHeadAttention(width: 16, heads: 2, projectionBias: true, keys: .diffusers, using: &rng)
    // 2 heads x 3072 x 3072 scores = 72 MiB: more than one 32 MiB block.
    let x = Tensor.normal([1, 3072, 16], mean: 0, std: 1, using: &rng)
    #expect(4 * 2 * 3072 * 3072 > MultiHeadAttention.scoreBlockBytes)
    let blocked = withoutGradients { attention.attend(x) }
    let whole = attention.attend(x.requiringGrad()).detached()  // recording: the whole matrix
    #expect(blocked.shape == whole.shape)
    let difference = zip(blocked.scalars, whole.scalars).map { Swift.abs($0 - $1) }.max()!
    #expect(difference <= 1e-6, "max |difference| \(difference)")
  }
}
