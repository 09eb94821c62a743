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

  /// Samples with their labels: each one's class for a class-conditional mixture, else its component.
  public func next(_ size: Int, using rng: inout RandomGenerator) throws -> Batch {
    let (samples, components) = mixture.sampleWithComponents(count: size, using: &rng)
    return Batch(samples: samples, labels: mixture.componentClasses.map { classes in components.map { classes[$0] } } ?? components)
  }

  public var labelNames: [String]? { mixture.classes.map { (0..<$0.count).map { "class \($0)" } } }
}

public enum GaussianMixtureData: DataComponent {
  public static let id = "gaussian-mixture"
  public static let summary = "samples of a Gaussian mixture (means, std, weights), drawn fresh every step"
  public static let parameters: [ParameterSpec] = mixtureParameters

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource {
    let mixture = try GaussianMixtureDenoiser(
      means: entry.matrix("means"), std: entry.double("std"),
      weights: entry.has("weights") ? entry.numbers("weights") : nil, schedule: context.schedule,
      prediction: context.prediction,
      componentClasses: entry.has("classes") ? entry.numbers("classes").map { Int($0) } : nil, location: entry.path)
    return GaussianMixtureSource(mixture: mixture)
  }
}

private let mixtureParameters: [ParameterSpec] = [
  ParameterSpec("means", .matrix, "the component means, one row each"),
  ParameterSpec("std", .number(1e-6...1e6), default: .number(0.25), "the standard deviation of every component"),
  .optional("weights", .numbers(count: nil), "mixture weights summing to 1 (default: equal)"),
  .optional(
    "classes", .numbers(count: nil),
    "the class of each component (classes 0..<C): batches are labelled with the sample's class instead of its component"),
]
