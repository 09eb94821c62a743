import DistillNN
import Foundation

// The logic of `pipeline predict` and `pipeline sample-teacher`, here so that it is tested.

/// What ``predict(teacherPath:inputPath:outputPath:)`` did.
public struct PredictReport: Sendable {
  public var teacherSummary: String
  public var inputShape: [Int]
  public var timesteps: [Float]
  public var outputShape: [Int]
  /// max |output − reference| when the input file also holds an `output` tensor.
  public var maxAbsDifferenceFromReference: Float?
}

/// Runs the teacher's raw network on the `sample` (`[N, ...]`) and `timestep` (a scalar, `[1]`
/// or `[N]`) tensors of `inputPath` and writes its output as `output` to `outputPath` (float32,
/// written to a temporary file and renamed). The layout is that of the diffusers fixtures, so
/// `io.safetensors` written by diffusers checks a converted checkpoint: when the input holds
/// an `output` tensor too, the largest difference from it is reported.
///
/// - Throws: ``DistillError`` naming the file and key.
public func predict(teacherPath: String, inputPath: String, outputPath: String) throws -> PredictReport {
  let teacher = try loadTeacher(path: teacherPath)
  let input = try SafetensorsFile.read(contentsOf: inputPath)
  for key in ["sample", "timestep"] where input.info(key) == nil {
    throw DistillError.invalidValue(
      location: "\(inputPath): \(key)", expected: "a tensor named \"\(key)\"",
      found: "none (keys: \(input.keys.joined(separator: ", ")))")
  }
  let sample = try input.tensor("sample")
  try teacher.validateInput(shape: sample.shape, location: "\(inputPath): sample")
  let n = sample.shape[0]
  let raw = try input.tensor("timestep").scalars
  let timesteps: [Float]
  switch raw.count {
  case 1: timesteps = Array(repeating: raw[0], count: n)
  case n: timesteps = raw
  default:
    throw DistillError.invalidValue(
      location: "\(inputPath): timestep", expected: "one timestep, or one per sample (\(n))",
      found: "\(raw.count) values")
  }
  guard timesteps.allSatisfy(\.isFinite) else {
    throw DistillError.invalidValue(
      location: "\(inputPath): timestep", expected: "finite values", found: "\(timesteps)")
  }
  let output = withoutGradients { teacher(sample, timesteps: timesteps) }
  var difference: Float?
  if input.info("output") != nil {
    let reference = try input.tensor("output")
    if reference.shape == output.shape {
      difference = zip(output.scalars, reference.scalars).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
    }
  }
  try SafetensorsFile.write(["output": output], metadata: ["teacher": teacherPath], to: outputPath)
  return PredictReport(
    teacherSummary: teacher.summary, inputShape: sample.shape, timesteps: timesteps, outputShape: output.shape,
    maxAbsDifferenceFromReference: difference)
}

/// The samplers `pipeline sample-teacher` runs.
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

/// How to sample a teacher.
public struct TeacherSamplingOptions: Sendable {
  public var sampler: TeacherSamplerKind
  public var steps: Int
  public var count: Int
  public var seed: UInt64
  public var batchSize: Int
  /// The shape of one sample; `nil` takes the teacher's ``Denoiser/sampleShape``.
  public var sampleShape: [Int]?
  /// Clamp x̂₀ to ±1 in DDPM/DDIM steps (diffusers' `clip_sample`, for image models).
  public var clipSample: Bool
  /// The DDPM/DDIM timestep spacing (Euler always uses `linspace`, as diffusers does).
  public var spacing: TimestepSpacing

  public init(
    sampler: TeacherSamplerKind = .ddim, steps: Int = 50, count: Int = 64, seed: UInt64 = 0, batchSize: Int = 64,
    sampleShape: [Int]? = nil, clipSample: Bool = false, spacing: TimestepSpacing = .leading
  ) {
    self.sampler = sampler
    self.steps = steps
    self.count = count
    self.seed = seed
    self.batchSize = batchSize
    self.sampleShape = sampleShape
    self.clipSample = clipSample
    self.spacing = spacing
  }

  /// The number of network evaluations per batch.
  public var evaluationsPerBatch: Int { sampler == .heun ? 2 * steps - 1 : steps }
}

/// Draws `options.count` samples from `teacher` in batches of `options.batchSize`.
///
/// The initial noise of all samples is drawn first from `RandomGenerator(seed:)`, so the
/// deterministic samplers (DDIM, Euler, Heun) give the same samples whatever the batch size;
/// DDPM's per-step noise comes from a stream forked per batch. `progress(done, total)` is
/// called after every network evaluation.
///
/// - Throws: ``DistillError/invalidValue(location:expected:found:)`` for bad options (named
///   by flag) or a sample shape the teacher cannot take.
public func sampleTeacher(
  _ teacher: any Denoiser, options: TeacherSamplingOptions, progress: ((Int, Int) -> Void)? = nil
) throws -> Tensor {
  func fail(_ flag: String, _ expected: String, _ found: String) -> DistillError {
    .invalidValue(location: flag, expected: expected, found: found)
  }
  let trainSteps = teacher.schedule.trainSteps
  guard options.count >= 1 else { throw fail("--count", "at least 1", String(options.count)) }
  guard options.batchSize >= 1 else { throw fail("--batch-size", "at least 1", String(options.batchSize)) }
  guard options.steps >= 1, options.steps <= trainSteps else {
    throw fail("--steps", "1...\(trainSteps) (the teacher's training timesteps)", String(options.steps))
  }
  if options.sampler == .heun {
    guard teacher.schedule.alphaBar(trainSteps - 1) > 0 else {
      throw fail("--sampler", "a sampler other than heun (σ_max is infinite on a zero-terminal-SNR schedule)", "heun")
    }
  }
  guard let shape = options.sampleShape ?? teacher.sampleShape else {
    throw fail("--size", "a sample size (the teacher's config has no sample_size)", "none")
  }
  try teacher.validateInput(shape: [1] + shape, location: "sample shape")
  let valuesPerSample = shape.reduce(1, *)
  var generator = RandomGenerator(seed: options.seed)
  let allNoise = Tensor.normal([options.count] + shape, using: &generator)
  let batches = (options.count + options.batchSize - 1) / options.batchSize
  let total = batches * options.evaluationsPerBatch
  var done = 0
  let schedule = teacher.schedule
  let prediction = teacher.prediction
  let model: DenoisingModel = { x, t in
    let output = teacher(x, timesteps: t)
    done += 1
    progress?(done, total)
    return output
  }
  var results: [Tensor] = []
  try withoutGradients {
    for b in 0..<batches {
      let start = b * options.batchSize
      let end = Swift.min(start + options.batchSize, options.count)
      let noise = allNoise.sliced(axis: 0, start..<end)
      switch options.sampler {
      case .ddpm:
        var stream = generator.fork(UInt64(b))
        let sampler = DDPMSampler(
          schedule: schedule, prediction: prediction, clipSample: options.clipSample, spacing: options.spacing)
        results.append(
          try sampler.sample(model: model, initialNoise: noise, steps: options.steps) {
            Tensor.normal($0, using: &stream)
          })
      case .ddim, .euler, .heun:
        results.append(
          try deterministicSample(
            model: model, schedule: schedule, prediction: prediction, sampler: options.sampler, steps: options.steps,
            noise: noise, spacing: options.spacing, clipSample: options.clipSample))
      }
    }
  }
  let samples = Tensor.concat(results, axis: 0)
  precondition(samples.count == options.count * valuesPerSample)
  return samples
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
    let ddim = DDIMSampler(schedule: schedule, prediction: prediction, clipSample: clipSample, spacing: spacing)
    return try ddim.sample(model: model, initialNoise: noise, steps: steps)
  case .euler:
    return try EulerSampler(schedule: schedule, prediction: prediction).sample(model: model, initialNoise: noise, steps: steps)
  case .heun:
    let denoiser = HeunSampler.denoiser(vpModel: model, schedule: schedule, prediction: prediction)
    return try HeunSampler(vpSchedule: schedule).sample(denoiser: denoiser, initialNoise: noise, steps: steps)
  }
}

/// Writes `samples` (`[N, ...]`) as the tensor `samples` of a float32 safetensors file
/// (temporary file, then rename).
public func writeSamples(_ samples: Tensor, to path: String, metadata: [String: String] = [:]) throws {
  try SafetensorsFile.write(["samples": samples], metadata: metadata, to: path)
}
