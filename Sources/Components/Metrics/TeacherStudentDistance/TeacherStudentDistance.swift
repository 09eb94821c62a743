import DistillCore
import DistillDiffusion
import DistillNN
import DistillPipeline

/// How far the student's samples are from the teacher's on the same noise: the first
/// `samples` rows of the evaluation's fixed noise go through the teacher's deterministic
/// sampler (DDIM 50 steps by default; computed once per run, since the noise is fixed) and are
/// compared with the student's samples from those rows. Reports `teacher-student-l2` (the mean
/// over samples of ‖student − teacher‖₂), `teacher-student-mse` (the mean squared difference
/// per value) and, with LPIPS weights, `teacher-student-lpips` (the mean LPIPS distance). For a
/// class-conditional student the teacher samples each row at the class the student was asked
/// for, with the entry's `guidance`; for a text-conditional one, at the row's prompt. A latent
/// teacher's samples are decoded by its VAE, as the student's are before metrics see them.
public final class TeacherStudentDistanceMetric: Metric {
  let count: Int
  let teacherSample: (Tensor) throws -> Tensor
  let lpips: LPIPS?
  /// The teacher's samples of the first `count` noise rows, by evaluation context.
  private var cached: (context: ObjectIdentifier, samples: Tensor)?

  /// - Parameter teacherSample: the teacher's samples for noise `[N] + noiseShape`.
  public init(count: Int, lpips: LPIPS?, teacherSample: @escaping (Tensor) throws -> Tensor) {
    self.count = count
    self.lpips = lpips
    self.teacherSample = teacherSample
  }

  public func evaluate(_ samples: Tensor, _ context: EvaluationContext) throws -> [String: Double] {
    guard let noise = context.noise else {
      throw DistillError.invalidValue(
        location: "teacher-student-distance", expected: "samples generated from the evaluation noise", found: "no noise")
    }
    guard samples.shape[0] >= count, noise.shape[0] >= count else {
      throw DistillError.invalidValue(
        location: "teacher-student-distance", expected: "at least \(count) evaluated samples",
        found: "\(min(samples.shape[0], noise.shape[0]))")
    }
    let teacher: Tensor
    if let cached, cached.context == ObjectIdentifier(context) {
      teacher = cached.samples
    } else {
      let rows = noise.sliced(axis: 0, 0..<count)
      teacher = try withoutGradients { try teacherSample(rows) }.detached()
      cached = (ObjectIdentifier(context), teacher)
    }
    let student = samples.shape[0] == count ? samples : samples.sliced(axis: 0, 0..<count)
    var values = Self.distances(student.reshaped(teacher.shape), teacher)
    if let lpips {
      var total = 0.0
      for start in stride(from: 0, to: count, by: 16) {
        let range = start..<min(count, start + 16)
        let d = withoutGradients { lpips(student.sliced(axis: 0, range).reshaped([range.count] + Array(teacher.shape.dropFirst())), teacher.sliced(axis: 0, range)) }
        total += d.scalars.reduce(0) { $0 + Double($1) }
      }
      values["teacher-student-lpips"] = total / Double(count)
    }
    return values
  }

  /// `teacher-student-l2` (mean per-sample Euclidean distance) and `teacher-student-mse`.
  public static func distances(_ student: Tensor, _ teacher: Tensor) -> [String: Double] {
    precondition(student.shape == teacher.shape)
    let n = student.shape[0]
    let per = student.count / n
    let (a, b) = (student.scalars, teacher.scalars)
    var l2 = 0.0
    var squaredTotal = 0.0
    for i in 0..<n {
      var squared = 0.0
      for j in (i * per)..<((i + 1) * per) {
        let d = Double(a[j]) - Double(b[j])
        squared += d * d
      }
      l2 += squared.squareRoot()
      squaredTotal += squared
    }
    return ["teacher-student-l2": l2 / Double(n), "teacher-student-mse": squaredTotal / Double(n * per)]
  }
}

/// The teacher samplers without noise of their own, which map the same noise to the same sample.
public enum DeterministicSampler: String, CaseIterable, Sendable {
  case ddim, euler, heun

  var kind: TeacherSamplerKind {
    switch self {
    case .ddim: return .ddim
    case .euler: return .euler
    case .heun: return .heun
    }
  }
}

public enum TeacherStudentDistance: MetricComponent {
  public static let id = "teacher-student-distance"
  public static let summary =
    "the student's samples against the teacher's deterministic samples (DDIM 50 by default) from the same fixed noise: mean L2, MSE, and LPIPS with its weights"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("samples", .integer(1...8192), default: .number(64), "noise rows compared (at most evaluation.samples)"),
    .choice(
      "sampler", DeterministicSampler.self, default: .ddim,
      "the teacher's deterministic sampler (DDIM with eta 0, Euler, EDM's Heun)"),
    ParameterSpec("steps", .integer(1...10_000), default: .number(50), "the teacher's sampling steps"),
    .choice("spacing", TimestepSpacing.self, default: .trailing,
      "the DDIM timestep spacing (trailing starts at T−1, where the noise is pure)"),
    ParameterSpec("clipSample", .bool, default: .bool(false), "clamp x̂₀ to [-1, 1] in DDIM steps (diffusers' clip_sample)"),
    LPIPSOptions.spec("also report the mean LPIPS distance"),
    teacherGuidanceParameter,
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Metric {
    let (_, generator) = try context.requireGeneratorOnTeacherNoise(for: entry)
    let teacher = try context.guidedTeacher(for: entry)
    let count = entry.int("samples")
    guard count <= context.manifest.evaluation.samples else {
      throw DistillError.invalidValue(
        location: "\(entry.path).samples", expected: "at most evaluation.samples (\(context.manifest.evaluation.samples))",
        found: String(count))
    }
    let steps = entry.int("steps")
    let trainSteps = teacher.schedule.trainSteps
    guard steps <= trainSteps else {
      throw DistillError.invalidValue(
        location: "\(entry.path).steps", expected: "at most the schedule's \(trainSteps) steps", found: String(steps))
    }
    let sampler = (entry.choice("sampler") as DeterministicSampler).kind
    if sampler == .heun, teacher.schedule.alphaBar(trainSteps - 1) <= 0 {
      throw DistillError.invalidValue(
        location: "\(entry.path).sampler", expected: "a sampler other than heun (σ_max is infinite on a zero-terminal-SNR schedule)",
        found: "\"heun\"")
    }
    // A latent teacher's samples are latents; the student's reach metrics decoded, so the
    // teacher's are decoded alike, and LPIPS compares the decoded images.
    let decoder = LPIPSOptions.decoder(context, for: generator)
    let lpips = try LPIPSOptions.load(entry, context, imageShape: decoder?.imageShape ?? generator.sampleShape)
    let spacing: TimestepSpacing = entry.choice("spacing")
    let clip = entry.bool("clipSample")
    let sampleShape = generator.sampleShape
    let condition = RunRecorder.evaluationCondition(generator, count: count, data: context.data)
    return TeacherStudentDistanceMetric(count: count, lpips: lpips) { noise in
      let x = noise.reshaped([noise.shape[0]] + sampleShape)
      var parts: [Tensor] = []
      for start in stride(from: 0, to: x.shape[0], by: 64) {
        let range = start..<min(x.shape[0], start + 64)
        let rows = x.sliced(axis: 0, range)
        parts.append(
          try deterministicSample(
            model: teacher.model(condition.rows(range)), schedule: teacher.schedule, prediction: teacher.prediction,
            sampler: sampler, steps: steps, noise: rows, spacing: spacing, clipSample: clip))
      }
      let samples = parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0)
      return decoder?.decode(samples) ?? samples
    }
  }
}
