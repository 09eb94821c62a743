import DistillCore
import DistillDiffusion
import DistillPipeline

/// The real score: the frozen teacher, never trained.
///
/// `guidanceScale` is classifier-free guidance on the real score only (DMD §3.4; the fake
/// score is never guided): `x̂₀ = x̂₀_uncond + s·(x̂₀_cond − x̂₀_uncond)`. It needs a
/// conditional teacher; every teacher Distillery loads today is unconditional, so a scale
/// other than 1 is refused rather than silently ignored.
public enum TeacherScore: ScoreComponent {
  public static let id = "teacher"
  public static let summary = "the frozen teacher as a score estimator (DMD's real score)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "guidanceScale", .number(0...100), default: .number(1),
      "classifier-free guidance scale on the real score (1 = none; other values need a conditional teacher)")
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> ScoreEstimator {
    let teacher = try context.requireTeacher(for: entry)
    let scale = entry.double("guidanceScale")
    // No Denoiser takes a condition yet: every teacher is unconditional, and guidance of an
    // unconditional model is the identity, so any other scale is a mistake in the manifest.
    guard scale == 1 else {
      throw DistillError.invalidValue(
        location: "\(entry.path).guidanceScale",
        expected: "1 for the unconditional teacher \"\(teacher.summary)\" (classifier-free guidance needs a conditional teacher)",
        found: String(scale))
    }
    return ScoreEstimator(denoiser: teacher, guidanceScale: scale)
  }
}
