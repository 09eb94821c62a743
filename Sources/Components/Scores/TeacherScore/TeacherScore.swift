import DistillCore
import DistillDiffusion
import DistillPipeline

/// The real score: the frozen teacher, never trained.
///
/// `guidanceScale` is classifier-free guidance on the real score only (DMD §3.4; the fake
/// score is never guided): `x̂₀ = x̂₀_uncond + s·(x̂₀_cond − x̂₀_uncond)`, the unconditional half
/// with the teacher's null class. It needs a class-conditional teacher with a null class; any
/// other scale than 1 of another teacher is refused rather than silently ignored.
public enum TeacherScore: ScoreComponent {
  public static let id = "teacher"
  public static let summary = "the frozen teacher as a score estimator (DMD's real score)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "guidanceScale", .number(0...100), default: .number(1),
      "classifier-free guidance scale on the real score (1 = none; other values need a conditional teacher with a null class)")
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> ScoreEstimator {
    let teacher = try context.requireTeacher(for: entry)
    let scale = entry.double("guidanceScale")
    _ = try BuildContext.guided(teacher, scale: scale, location: "\(entry.path).guidanceScale")
    return ScoreEstimator(denoiser: teacher, guidanceScale: scale)
  }
}
