/// Intermediate activations of a denoising network, for discriminators that read them.
public struct NetworkFeatures {
  /// The encoder's outputs from input to bottleneck: an MLP's hidden activations, a UNet's
  /// down-block outputs (ADD puts a discriminator head on each).
  public var encoder: [Tensor]
  /// The bottleneck: an MLP's last hidden activation, a UNet's mid-block output (DMD2's
  /// classifier head reads it).
  public var bottleneck: Tensor

  public init(encoder: [Tensor], bottleneck: Tensor) {
    self.encoder = encoder
    self.bottleneck = bottleneck
  }
}

/// A time-conditioned network (or a denoiser around one) whose encoder activations can be
/// read: the network runs from the input up to its bottleneck and stops there.
///
/// Gradients flow through the features as through the network's output, so a loss on them
/// trains the encoder when gradients are enabled.
public protocol FeatureTapping: AnyObject {
  /// The features for `x` of `[N, ...]`, one timestep per sample and, for a class-conditional
  /// network, one class label per sample (`nil`: unconditional, the null class) — the same
  /// input as the network's forward pass.
  func features(_ x: Tensor, timesteps: [Float], labels: [Int]?) -> NetworkFeatures
  /// The features with, for a text-conditional network, one prompt embedding per sample
  /// (`[N, L, D]`, the encoder hidden states its cross-attention reads; `nil`: the empty
  /// prompt's). The default is the labels' features, for networks that take no prompts.
  func features(_ x: Tensor, timesteps: [Float], labels: [Int]?, encoderHiddenStates: Tensor?) -> NetworkFeatures
}

extension FeatureTapping {
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?, encoderHiddenStates: Tensor?)
    -> NetworkFeatures
  {
    precondition(encoderHiddenStates == nil, "prompt embeddings for a network that takes no prompts")
    return features(x, timesteps: timesteps, labels: labels)
  }
}

extension FeatureTapping {
  /// The unconditional features.
  public func features(_ x: Tensor, timesteps: [Float]) -> NetworkFeatures { features(x, timesteps: timesteps, labels: nil) }
}

extension FeatureTapping {
  /// The per-sample shapes of the features of one sample of `sampleShape` at `timestep`, run
  /// without gradients: what discriminator heads on them are sized by.
  public func featureShapes(sampleShape: [Int], timestep: Float) -> (encoder: [[Int]], bottleneck: [Int]) {
    let features = withoutGradients { self.features(Tensor.zeros([1] + sampleShape), timesteps: [timestep]) }
    return (features.encoder.map { Array($0.shape.dropFirst()) }, Array(features.bottleneck.shape.dropFirst()))
  }
}
