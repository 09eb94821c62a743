/// A small classifier from one feature tensor to one logit per sample: DMD2's head on a
/// diffusion network's bottleneck, and each of ADD's heads on a frozen encoder's features.
///
/// - Vector features `[N, D]`: `Linear(D, D) → SiLU → Linear(D, 1)`.
/// - Spatial features `[N, C, H, W]`, as DMD2's `edm_guidance.py` (`conv4 s2 → GN → SiLU` down
///   to 4×4, then `conv4 s4 → GN → SiLU → conv1`), for any size: 4×4 stride-2 convolutions
///   while both sides are even and above 4, then a convolution as large as the remaining
///   square (an average over it when it is not square), GroupNorm, SiLU and a 1×1 convolution.
///
/// With `classes` it is a projection discriminator (Miyato & Koyama 2018): the logit for class
/// `c` adds `⟨e_c, pool(features)⟩`, `e` a learnt table of `classes` vectors of the features'
/// channels and `pool` the spatial mean (key `projection.weight`).
public final class DiscriminatorHead: Module {
  /// The shape of one sample's features (`[D]` or `[C, H, W]`).
  public let featureShape: [Int]
  let layers: [any UnaryLayer]
  /// For spatial features that end on a non-square map: average it before the last layers.
  let averageAt: Int?
  /// The class table of a projection discriminator.
  let projection: Embedding?

  public init(featureShape: [Int], classes: Int? = nil, using rng: inout RandomGenerator) {
    precondition(
      featureShape.count == 1 || featureShape.count == 3,
      "features \(featureShape) are neither [D] nor [C, H, W]")
    self.featureShape = featureShape
    var layers: [any UnaryLayer] = []
    var average: Int?
    if featureShape.count == 1 {
      let d = featureShape[0]
      layers = [
        Linear(inputSize: d, outputSize: d, using: &rng), ActivationLayer(.silu),
        Linear(inputSize: d, outputSize: 1, using: &rng),
      ]
    } else {
      let c = featureShape[0]
      var (h, w) = (featureShape[1], featureShape[2])
      let groups = Self.groups(channels: c)
      while h > 4, w > 4, h % 2 == 0, w % 2 == 0 {
        layers += [
          Conv2d(
            inputChannels: c, outputChannels: c, kernel: 4, stride: 2, padding: 1, using: &rng),
          GroupNorm(groups: groups, channels: c), ActivationLayer(.silu),
        ]
        (h, w) = (h / 2, w / 2)
      }
      if h == w {
        layers.append(
          Conv2d(inputChannels: c, outputChannels: c, kernel: h, stride: h, using: &rng))
      } else {
        average = layers.count
        layers.append(Conv2d(inputChannels: c, outputChannels: c, kernel: 1, using: &rng))
      }
      layers += [
        GroupNorm(groups: groups, channels: c), ActivationLayer(.silu),
        Conv2d(inputChannels: c, outputChannels: 1, kernel: 1, using: &rng),
      ]
    }
    self.layers = layers
    self.averageAt = average
    // Drawn after the layers, so that an unconditional head is initialised as before.
    projection = classes.map { Embedding(count: $0, dimension: featureShape[0], using: &rng) }
    super.init()
    for (i, layer) in layers.enumerated() { register(String(i), layer) }
    if let projection { register("projection", projection) }
  }

  /// GroupNorm groups for `channels`: at most 32, with at least 4 channels per group where
  /// possible, so that a 1×1 map still has values to normalise over.
  static func groups(channels: Int) -> Int {
    var g = max(1, min(32, channels / 4))
    while channels % g != 0 { g -= 1 }
    return g
  }

  /// One logit per sample, `[N]`: for a projection head, at each sample's class in `labels`.
  public func callAsFunction(_ features: Tensor, labels: [Int]? = nil) -> Tensor {
    let n = features.shape[0]
    precondition(
      Array(features.shape.dropFirst()) == featureShape,
      "features \(features.shape) for a head on \(featureShape)")
    var h = features
    for (i, layer) in layers.enumerated() {
      if i == averageAt { h = h.mean(axes: [2, 3], keepDims: true) }
      h = layer(h)
    }
    let logits = h.reshaped([n])
    guard let projection else { return logits }
    guard let labels else { preconditionFailure("a projection discriminator head needs class labels") }
    let pooled = featureShape.count == 3 ? features.mean(axes: [2, 3]) : features
    return logits + (projection(labels) * pooled).sum(axes: [1])
  }
}
