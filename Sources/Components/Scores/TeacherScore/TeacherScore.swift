import DistillCore
import DistillDiffusion
import DistillPipeline

/// The real score: the frozen teacher, never trained.
public enum TeacherScore: ScoreComponent {
  public static let id = "teacher"
  public static let kind = ComponentKind.score
  public static let summary = "the frozen teacher as a score estimator (DMD's real score)"
  public static let parameters: [ParameterSpec] = []

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> ScoreEstimator {
    guard let teacher = context.teacher else {
      throw DistillError.invalidValue(location: entry.path, expected: "a manifest with a teacher", found: "no teacher")
    }
    return ScoreEstimator(denoiser: teacher)
  }
}
