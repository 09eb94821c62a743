import DistillCore
import DistillDiffusion
import DistillPipeline

/// Samples drawn fresh each step from a Gaussian mixture: data for training a toy teacher,
/// and the reference distribution for metrics.
public final class GaussianMixtureSource: GaussianMixtureDataSource {
  /// The mixture the samples are drawn from (metrics read its modes).
  public let mixture: GaussianMixtureDenoiser
  public var sampleShape: [Int] { mixture.sampleShape ?? [mixture.dimension] }

  init(mixture: GaussianMixtureDenoiser) { self.mixture = mixture }

  public func next(_ size: Int, using rng: inout RandomGenerator) throws -> Batch {
    let (samples, components) = mixture.sampleWithComponents(count: size, using: &rng)
    return Batch(samples: samples, labels: components)
  }
}

public enum GaussianMixtureData: DataComponent {
  public static let id = "gaussian-mixture"
  public static let summary = "samples of a Gaussian mixture (means, std, weights), drawn fresh every step"
  public static let parameters: [ParameterSpec] = mixtureParameters

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource {
    let mixture = try GaussianMixtureDenoiser(
      means: entry.matrix("means"), std: entry.double("std"),
      weights: entry.has("weights") ? entry.numbers("weights") : nil, schedule: context.schedule,
      prediction: context.prediction, location: entry.path)
    return GaussianMixtureSource(mixture: mixture)
  }
}

private let mixtureParameters: [ParameterSpec] = [
  ParameterSpec("means", .matrix, "the component means, one row each"),
  ParameterSpec("std", .number(1e-6...1e6), default: .number(0.25), "the standard deviation of every component"),
  .optional("weights", .numbers(count: nil), "mixture weights summing to 1 (default: equal)"),
]
