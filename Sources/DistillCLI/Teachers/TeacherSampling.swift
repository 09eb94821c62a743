import DistillDiffusion

// The logic of `pipeline sample-teacher`.

/// How to sample a teacher.
struct TeacherSamplingOptions: Sendable {
  var sampler: TeacherSamplerKind = .ddim
  var steps = 50
  var count = 64
  var seed: UInt64 = 0
  var batchSize = 64
  /// The shape of one sample; `nil` takes the teacher's ``Denoiser/sampleShape``.
  var sampleShape: [Int]? = nil
  /// Clamp x̂₀ to ±1 in DDPM/DDIM steps (diffusers' `clip_sample`, for image models).
  var clipSample = false
  /// The DDPM/DDIM timestep spacing (Euler always uses `linspace`, as diffusers does).
  var spacing: TimestepSpacing = .leading
  /// Classifier-free guidance scale (1: none).
  var guidance = 1.0
  /// The class of every sample of a class-conditional teacher; `nil`: sample `i` of class `i mod classes`.
  var classLabel: Int? = nil

  /// The number of network evaluations per batch.
  var evaluationsPerBatch: Int { sampler == .heun ? 2 * steps - 1 : steps }
}

/// Draws `options.count` samples from `teacher` in batches of `options.batchSize`.
///
/// The initial noise of all samples is drawn first from `RandomGenerator(seed:)`, so the
/// deterministic samplers (DDIM, Euler, Heun) give the same samples whatever the batch size;
/// DDPM's per-step noise comes from a stream forked per batch. `progress(done, total)` is
/// called after every network evaluation.
///
/// - Throws: ``SamplingSettingError`` for bad options, ``DistillError`` for a sample shape the
///   teacher cannot take.
func sampleTeacher(
  _ teacher: any Denoiser, options: TeacherSamplingOptions, progress: ((Int, Int) -> Void)? = nil
) throws -> Tensor {
  try checkSampling(
    teacher, sampler: options.sampler, steps: options.steps, count: options.count, batchSize: options.batchSize)
  guard let shape = options.sampleShape ?? teacher.sampleShape else {
    throw SamplingSettingError(
      setting: .sampleSize, expected: "a sample size (the teacher's config has no sample_size)", found: "none")
  }
  try teacher.validateInput(shape: [1] + shape, location: "sample shape")
  let condition = try samplingCondition(teacher, options: options)
  let valuesPerSample = shape.reduce(1, *)
  var generator = RandomGenerator(seed: options.seed)
  let allNoise = Tensor.normal([options.count] + shape, using: &generator)
  let batches = (options.count + options.batchSize - 1) / options.batchSize
  let total = batches * options.evaluationsPerBatch
  var done = 0
  let schedule = teacher.schedule
  let prediction = teacher.prediction
  let guided = teacher.guided(options.guidance)
  var batchCondition = Condition.none
  let model: DenoisingModel = { x, t in
    let output = guided(x, timesteps: t, condition: batchCondition)
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
      batchCondition = condition.rows(start..<end)
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

/// The labels of every sample (`options.classLabel`, or sample `i` of class `i mod classes`)
/// for a class-conditional teacher, checked with the guidance; none for an unconditional one.
///
/// - Throws: ``SamplingSettingError`` for a class out of range or given to a teacher without
///   classes, and for guidance of a teacher without classes or a null class.
func samplingCondition(_ teacher: any Denoiser, options: TeacherSamplingOptions) throws -> Condition {
  guard let classes = teacher.classes else {
    if let label = options.classLabel {
      throw SamplingSettingError(setting: .classLabel, expected: "no class for a teacher without classes", found: String(label))
    }
    guard options.guidance == 1 else {
      throw SamplingSettingError(
        setting: .guidance, expected: "1 for a teacher without classes (guidance needs a conditional teacher)",
        found: String(options.guidance))
    }
    return .none
  }
  if let label = options.classLabel, !(0..<classes.count).contains(label) {
    throw SamplingSettingError(setting: .classLabel, expected: "a class in 0..<\(classes.count)", found: String(label))
  }
  guard options.guidance == 1 || classes.null != nil else {
    throw SamplingSettingError(
      setting: .guidance, expected: "1 for a teacher without a null class (trained without label dropout)",
      found: String(options.guidance))
  }
  guard options.guidance >= 0, options.guidance.isFinite else {
    throw SamplingSettingError(setting: .guidance, expected: "a non-negative number", found: String(options.guidance))
  }
  return Condition(labels: (0..<options.count).map { options.classLabel ?? $0 % classes.count })
}
