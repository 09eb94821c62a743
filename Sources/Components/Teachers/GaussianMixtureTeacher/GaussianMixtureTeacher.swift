import DistillCore
import DistillDiffusion
import DistillPipeline

/// An analytic teacher: a mixture of isotropic Gaussians whose denoiser is exact at every
/// noise level, on the manifest's schedule (the DMD paper's toy experiment).
public enum GaussianMixtureTeacher: TeacherComponent {
  public static let id = "gaussian-mixture"
  public static let summary = "an exact Gaussian-mixture denoiser (means, std, weights) on the manifest's schedule"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("means", .matrix, "the component means, one row each"),
    ParameterSpec("std", .number(1e-6...1e6), default: .number(0.25), "the standard deviation of every component"),
    .optional("weights", .numbers(count: nil), "mixture weights summing to 1 (default: equal)"),
    .optional("sampleShape", .numbers(count: nil), "the shape of one sample (default: [dimension])"),
    .optional(
      "classes", .numbers(count: nil),
      "the class of each component (classes 0..<C): a class-conditional teacher whose class c is its components of class c"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Denoiser {
    let teacher = try GaussianMixtureDenoiser(
      means: entry.matrix("means"), std: entry.double("std"),
      weights: entry.has("weights") ? entry.numbers("weights") : nil, schedule: context.schedule,
      prediction: context.prediction, sampleShape: entry.has("sampleShape") ? entry.numbers("sampleShape").map { Int($0) } : nil,
      componentClasses: entry.has("classes") ? entry.numbers("classes").map { Int($0) } : nil, location: entry.path)
    teacher.scheduleConfig = context.scheduleConfig
    return teacher
  }
}
