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
