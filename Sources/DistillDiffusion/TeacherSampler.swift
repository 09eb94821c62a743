import DistillNN

/// The reference samplers a teacher is sampled with (`pipeline sample-teacher`, precomputed pairs,
/// the teacher-student distance).
public enum TeacherSamplerKind: String, Sendable, CaseIterable {
  /// Ancestral DDPM (``DDPMSampler``), fixed-small variance.
  case ddpm
  /// Deterministic DDIM (``DDIMSampler``, η = 0).
  case ddim
  /// Euler in the VE parametrisation with Karras sigmas (``EulerSampler``).
  case euler
  /// EDM's 2nd-order Heun (``HeunSampler``) on the teacher's x̂₀ at σ ∈ [σ(0), σ(T−1)], ρ = 7.
  case heun
}

/// A sampling setting out of its range. The library names the setting by its Swift name; a
/// command line words it with its own name for it (its flag).
public struct SamplingSettingError: Error, CustomStringConvertible {
  public enum Setting: String, Sendable {
    case count, sampler, steps, seed, batchSize, shardSize, sampleSize, guidance, classLabel
  }
  public var setting: Setting
  public var expected: String
  public var found: String

  public init(setting: Setting, expected: String, found: String) {
    (self.setting, self.expected, self.found) = (setting, expected, found)
  }

  public var description: String { "\(setting.rawValue): expected \(expected), found \(found)" }
}

/// Checks the settings every batched sampling of `teacher` shares: at least one sample and one
/// sample per batch, `steps` within the teacher's training timesteps, and no Heun on a
/// zero-terminal-SNR schedule (its σ_max is infinite).
public func checkSampling(
  _ teacher: any Denoiser, sampler: TeacherSamplerKind, steps: Int, count: Int, batchSize: Int
) throws(SamplingSettingError) {
  func fail(_ setting: SamplingSettingError.Setting, _ expected: String, _ found: String) -> SamplingSettingError {
    SamplingSettingError(setting: setting, expected: expected, found: found)
  }
  let trainSteps = teacher.schedule.trainSteps
  guard count >= 1 else { throw fail(.count, "at least 1", String(count)) }
  guard batchSize >= 1 else { throw fail(.batchSize, "at least 1", String(batchSize)) }
  guard steps >= 1, steps <= trainSteps else {
    throw fail(.steps, "1...\(trainSteps) (the teacher's training timesteps)", String(steps))
  }
  if sampler == .heun, teacher.schedule.alphaBar(trainSteps - 1) <= 0 {
    throw fail(.sampler, "a sampler other than heun (σ_max is infinite on a zero-terminal-SNR schedule)", "heun")
  }
}

/// The sample of a deterministic sampler (DDIM with η = 0, Euler, Heun) from unit Gaussian
/// `noise`, for a model of `schedule` and `prediction`; the same noise always gives the same
/// sample. `spacing` and `clipSample` apply to DDIM.
public func deterministicSample(
  model: @escaping DenoisingModel, schedule: NoiseSchedule, prediction: Prediction, sampler: TeacherSamplerKind, steps: Int,
  noise: Tensor, spacing: TimestepSpacing, clipSample: Bool = false
) throws -> Tensor {
  switch sampler {
  case .ddim, .ddpm:
    precondition(sampler == .ddim, "deterministicSample: DDPM draws noise at every step")
    let ddim = DDIMSampler(
      schedule: schedule, prediction: prediction, clipSample: clipSample, useClippedModelOutput: true, spacing: spacing)
    return try ddim.sample(model: model, initialNoise: noise, steps: steps)
  case .euler:
    return try EulerSampler(schedule: schedule, prediction: prediction).sample(model: model, initialNoise: noise, steps: steps)
  case .heun:
    let denoiser = HeunSampler.denoiser(vpModel: model, schedule: schedule, prediction: prediction)
    return try HeunSampler(vpSchedule: schedule).sample(denoiser: denoiser, initialNoise: noise, steps: steps)
  }
}
