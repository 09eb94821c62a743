import DistillCore

/// The architecture of an ``ImageClassifier``: what `classifier.json` records beside the
/// weights.
public struct ImageClassifierConfig: Equatable, Sendable {
  /// One image, `[C, H, W]`.
  public var inputShape: [Int]
  public var classes: Int
  /// Channels of the first stage; later stages double it, up to 4x.
  public var width: Int
  /// Width of the penultimate layer, the features that feature metrics compare.
  public var features: Int

  public init(inputShape: [Int], classes: Int, width: Int = 16, features: Int = 64) {
    self.inputShape = inputShape
    self.classes = classes
    self.width = width
    self.features = features
  }

  /// Stages of 3x3 convolution, ReLU and 2x2 average pooling: as many as halve the smaller
  /// side to 4 pixels or fewer (16x16 takes 2, 32x32 takes 3), at least one.
  public var stages: Int {
    var side = min(inputShape[1], inputShape[2])
    var count = 0
    repeat {
      side /= 2
      count += 1
    } while side > 4
    return count
  }

  /// Channels of stage `i`.
  public func channels(_ i: Int) -> Int { width << min(i, 2) }

  /// The height and width after the stages.
  public var pooledSize: (Int, Int) { (inputShape[1] >> stages, inputShape[2] >> stages) }
}

/// A small CNN classifier for images, trained by Distillery on a labelled dataset so that
/// its penultimate features can serve as a feature extractor for evaluation (`FD_classifier`)
/// and its predictions as a mode detector (mode coverage by class).
///
/// `[N, C, H, W]` → stages `conv<i>` (3x3, padding 1) + ReLU + 2x2 average pool → flatten →
/// `fc` + ReLU (the ``features(_:)``, `[N, features]`) → `head` (logits, `[N, classes]`).
public final class ImageClassifier: Module {
  public let config: ImageClassifierConfig
  let convs: [Conv2d]
  let fc: Linear
  let head: Linear

  /// A classifier with fresh weights from `rng`.
  public init(_ config: ImageClassifierConfig, using rng: inout RandomGenerator) {
    precondition(config.inputShape.count == 3 && config.classes >= 1, "ImageClassifier: bad config \(config)")
    self.config = config
    var convs: [Conv2d] = []
    var channels = config.inputShape[0]
    for i in 0..<config.stages {
      convs.append(
        Conv2d(inputChannels: channels, outputChannels: config.channels(i), kernel: 3, padding: 1, using: &rng))
      channels = config.channels(i)
    }
    self.convs = convs
    let (h, w) = config.pooledSize
    fc = Linear(inputSize: channels * h * w, outputSize: config.features, using: &rng)
    head = Linear(inputSize: config.features, outputSize: config.classes, using: &rng)
    super.init()
    for (i, conv) in convs.enumerated() { register("conv\(i)", conv) }
    register("fc", fc)
    register("head", head)
  }

  /// The penultimate features, `[N, features]`, for images `[N] + inputShape`.
  public func features(_ x: Tensor) -> Tensor {
    precondition(Array(x.shape.dropFirst()) == config.inputShape, "ImageClassifier expects [N] + \(config.inputShape), got \(x.shape)")
    var h = x
    for conv in convs { h = conv(h).relu().avgPool2d(kernel: 2) }
    return fc(h.reshaped([x.shape[0], h.count / x.shape[0]])).relu()
  }

  /// The logits, `[N, classes]`.
  public func callAsFunction(_ x: Tensor) -> Tensor { head(features(x)) }
}

extension ImageClassifier: FeatureTapping {
  /// Each convolution stage's pooled output, and the penultimate features as the bottleneck:
  /// a feature network for discriminators that is not a diffusion model (it sees no timestep
  /// or class).
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?) -> NetworkFeatures {
    precondition(Array(x.shape.dropFirst()) == config.inputShape, "ImageClassifier expects [N] + \(config.inputShape), got \(x.shape)")
    var h = x
    var stages: [Tensor] = []
    for conv in convs {
      h = conv(h).relu().avgPool2d(kernel: 2)
      stages.append(h)
    }
    return NetworkFeatures(encoder: stages, bottleneck: fc(h.reshaped([x.shape[0], h.count / x.shape[0]])).relu())
  }

  /// The same features: a classifier reads the images alone, not the prompts.
  public func features(_ x: Tensor, timesteps: [Float], labels: [Int]?, encoderHiddenStates: Tensor?)
    -> NetworkFeatures
  {
    features(x, timesteps: timesteps, labels: labels)
  }

}

extension ImageClassifier {
  /// The mean cross-entropy of `logits` `[N, K]` against class indices `labels`.
  public static func crossEntropy(_ logits: Tensor, labels: [Int]) -> Tensor {
    let (n, k) = (logits.shape[0], logits.shape[1])
    precondition(labels.count == n && labels.allSatisfy { (0..<k).contains($0) }, "crossEntropy: bad labels")
    var oneHot = [Float](repeating: 0, count: n * k)
    for (i, label) in labels.enumerated() { oneHot[i * k + label] = -1 / Float(n) }
    return (logits.logSoftmax(axis: 1) * Tensor(shape: [n, k], scalars: oneHot)).sum()
  }
}
