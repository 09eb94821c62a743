import DistillCore
import DistillDiffusion
import Foundation
import ImageIO

/// What a run leaves for people to read: every logged value in the metric sinks
/// (metrics.jsonl and TensorBoard), evaluation on fixed noise, sample grids, report.html, and
/// the final outputs (`generator.safetensors`, `generator.json`, `denoiser/`, `vae/`). Only the main
/// rank records; every failed write goes through ``RunCheckpoints/guardingWrites(at:_:)``.
public final class RunRecorder {
  let pipeline: AssembledPipeline
  let folder: RunFolder
  let ema: ExponentialMovingAverage?
  let checkpoints: RunCheckpoints
  /// Shows long phases (evaluation sampling) once they have run a while.
  let progress: ProgressReporter
  /// Where logged values and images go; metrics.jsonl and TensorBoard once ``open(resumingAt:)`` ran.
  public var sinks: [any MetricSink] = []
  var grids: [(step: Int, relativePath: String)] = []
  private var cachedEvaluationContext: EvaluationContext?

  init(
    pipeline: AssembledPipeline, folder: RunFolder, ema: ExponentialMovingAverage?, checkpoints: RunCheckpoints,
    progress: ProgressReporter
  ) {
    self.pipeline = pipeline
    self.progress = progress
    self.folder = folder
    self.ema = ema
    self.checkpoints = checkpoints
  }

  /// Opens metrics.jsonl (cut back to `resumeStep` when resuming) and the TensorBoard events.
  func open(resumingAt resumeStep: Int?) throws {
    sinks = [try MetricsLog(path: folder.metricsPath, resumingAt: resumeStep), try TensorBoardWriter(directory: folder.eventsFolder)]
  }

  func close() {
    for sink in sinks { try? sink.finish() }
  }

  /// The grids an earlier run of this folder wrote up to `step`, for the report.
  func findGrids(upTo step: Int) {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.samplesFolder)) ?? []
    grids = names.compactMap { name -> (Int, String)? in
      guard name.hasPrefix("step-"), name.hasSuffix(".png"), let s = Int(name.dropFirst(5).dropLast(4)), s <= step
      else { return nil }
      return (s, "samples/\(name)")
    }.sorted { $0.0 < $1.0 }
  }

  /// Sends `values` to every sink.
  func record(_ step: Int, _ values: [String: Double]) throws {
    try checkpoints.guardingWrites(at: step) {
      for sink in sinks { try sink.record(step: step, values: values) }
    }
  }

  // MARK: Evaluation

  /// Runs `body` with the weights evaluation uses (the EMA's when configured and asked
  /// for) in eval mode, restoring the trained weights after.
  public func withEvaluationWeights<T>(_ body: () throws -> T) throws -> T {
    let module = pipeline.generator.module
    module.eval()
    defer { module.train() }
    guard let ema, pipeline.manifest.evaluation.useEMA else { return try body() }
    let live = module.namedParameters().map { Tensor(shape: $0.parameter.shape, scalars: $0.parameter.value.scalars) }
    try ema.copy(to: module.namedParameters())
    defer {
      for (entry, value) in zip(module.namedParameters(), live) { entry.parameter.assign(value) }
    }
    return try body()
  }

  /// Generates `count` samples from the fixed evaluation noise of `seed` (and, for a
  /// conditional generator, the evaluation labels: row `i` of class `i mod classes`), in
  /// batches; `progress(done, total)` counts network evaluations over all batches. A
  /// text-conditional generator gets the prompts of `data` (``evaluationCondition(_:count:data:)``).
  public static func generate(
    _ generator: any Generator, count: Int, seed: UInt64, batchSize: Int, data: (any DataSource)? = nil,
    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }
  ) -> Tensor {
    let noise = evaluationNoise(generator, count: count, seed: seed)
    let condition = evaluationCondition(generator, count: count, data: data)
    let batches = (count + batchSize - 1) / batchSize
    let parts = (0..<batches).map { batch in
      let rows = batch * batchSize..<min(count, (batch + 1) * batchSize)
      return withoutGradients {
        generator.sample(noise.sliced(axis: 0, rows), condition: condition.rows(rows)) { done, steps in
          progress(batch * steps + done, batches * steps)
        }
      }.detached()
    }
    return parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0)
  }

  /// The fixed noise ``generate(_:count:seed:batchSize:)`` turns into samples.
  public static func evaluationNoise(_ generator: any Generator, count: Int, seed: UInt64) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    return Tensor.normal([count] + generator.noiseShape, using: &rng)
  }

  /// The classes evaluation asks a conditional generator for: row `i` of class
  /// `i mod classes`, so that every class has its share of the samples and of the grid's rows;
  /// for a text-conditional generator, row `i` of prompt `i mod prompts` of `data`'s captions.
  public static func evaluationCondition(_ generator: any Generator, count: Int, data: (any DataSource)? = nil) -> Condition {
    if generator.prompts != nil, let captions = data as? any PromptDataSource {
      return Condition(embeddings: captions.promptEmbeddings.gatheringRows((0..<count).map { $0 % captions.prompts.count }))
    }
    guard let classes = generator.classes else { return .none }
    return Condition(labels: (0..<count).map { $0 % classes.count })
  }

  /// What metrics judge evaluated samples by: the condition they were asked for and the
  /// generator's classes; for a text-conditional generator whose prompts name classes, row `i`
  /// of the class of prompt `i mod prompts` (so `class-accuracy` is prompt-following).
  static func evaluationClasses(_ generator: any Generator, count: Int, data: (any DataSource)?) -> (
    condition: Condition, classes: ClassConditioning?
  ) {
    guard generator.prompts != nil, let captions = data as? any PromptDataSource, let labels = captions.promptLabels
    else { return (evaluationCondition(generator, count: count, data: data), generator.classes) }
    let rows = (0..<count).map { labels[$0 % captions.prompts.count] }
    return (Condition(labels: rows), ClassConditioning(count: (labels.max() ?? 0) + 1))
  }

  /// Metrics and a sample grid on the fixed evaluation noise, logged at `step`, and the report.
  public func evaluate(at step: Int) throws {
    let evaluation = pipeline.manifest.evaluation
    let batch = max(pipeline.manifest.training.batchSize, 64)
    let data = pipeline.data
    let (generated, grid) = try withEvaluationWeights {
      let samples = Self.generate(
        pipeline.generator, count: evaluation.samples, seed: evaluation.seed, batchSize: batch, data: data
      ) { progress.phase("evaluation at step \(step): sampling", done: $0, total: $1) }
      let grid =
        evaluation.gridSize <= evaluation.samples
        ? samples.sliced(axis: 0, 0..<evaluation.gridSize)
        : Self.generate(
          pipeline.generator, count: evaluation.gridSize, seed: evaluation.seed, batchSize: batch, data: data
        ) { progress.phase("evaluation at step \(step): sampling the grid", done: $0, total: $1) }
      return (samples, pipeline.images(grid))
    }
    let samples = pipeline.images(generated)
    var values: [String: Double] = [:]
    let context = evaluationContext
    for metric in pipeline.metrics {
      do {
        for (key, value) in try metric.metric.evaluate(samples, context) { values["eval/\(key)"] = value }
      } catch let error as DistillError {
        throw DistillError.invalidValue(location: metric.path, expected: "a metric that fits the samples", found: "\(error)")
      }
    }
    values["eval/sample-mean"] = Double(generated.mean().item)
    values["eval/sample-std"] = Double(generated.variance().sqrt().item)
    try record(step, values)
    try writeGrid(grid, reference: try context.referenceSamples(min(evaluation.samples, 2048)), at: step)
    try writeReport(at: step)
  }

  /// The reference distribution metrics compare with: the data source's samples, else
  /// exact draws from an analytic teacher (images: a latent source's samples decoded).
  public var evaluationContext: EvaluationContext {
    if let cached = cachedEvaluationContext { return cached }
    let seed = pipeline.manifest.evaluation.seed &+ 1
    let data = pipeline.data
    let teacher = pipeline.teacher
    let decoder = pipeline.latentDecoder
    let generator = pipeline.generator
    let evaluation = pipeline.manifest.evaluation
    let noise = { Self.evaluationNoise(generator, count: evaluation.samples, seed: evaluation.seed) }
    let context = EvaluationContext(
      teacher: teacher, data: data, noise: noise,
      condition: Self.evaluationClasses(generator, count: evaluation.samples, data: data).condition,
      classes: Self.evaluationClasses(generator, count: evaluation.samples, data: data).classes
    ) { count -> Batch? in
      func decodingLatents(_ batch: Batch) -> Batch {
        guard let latent = decoder, let samples = batch.samples else { return batch }
        var images = batch
        images.samples = withoutGradients { latent.decode(samples) }.detached()
        return images
      }
      var rng = RandomGenerator(seed: seed)
      if let mixture = teacher as? GaussianMixtureDenoiser {
        let (samples, components) = mixture.sampleWithComponents(count: count, using: &rng)
        return Batch(samples: samples, labels: mixture.componentClasses.map { classes in components.map { classes[$0] } })
      }
      if let data {
        // A source with a cursor (pairs) must not move for the reference, or a resumed run,
        // which draws it again, would train on other batches than an uninterrupted one.
        guard let stateful = data as? any Checkpointable else {
          return decodingLatents(try data.next(count, using: &rng))
        }
        let saved = stateful.checkpointState()
        defer { try? stateful.restore(saved) }
        return decodingLatents(try data.next(count, using: &rng))
      }
      return nil
    }
    cachedEvaluationContext = context
    return context
  }

  // MARK: Files

  /// `samples/step-N.png`: an image grid for image samples, a scatter plot for 2-D points;
  /// the same picture goes to every sink.
  func writeGrid(_ grid: Tensor, reference: Tensor?, at step: Int) throws {
    let shape = Array(grid.shape.dropFirst())
    let image: Tensor
    if shape.count == 3, shape[0] == 1 || shape[0] == 3 {
      image = try imageGrid(ImageFile.fromSignedUnit(grid))
    } else if shape == [2] {
      let points = Tensor.concat([reference, grid].compactMap { $0 }, axis: 0)
      image = ScatterPlot.render(samples: grid, reference: reference, bounds: ScatterPlot.bounds(points))
    } else {
      return
    }
    let relative = String(format: "samples/step-%08d.png", step)
    try checkpoints.guardingWrites(at: step) {
      try ImageFile.writePNG(image, to: folder.file(relative))
      for sink in sinks { try sink.image(step: step, tag: "samples", image) }
    }
    grids.removeAll { $0.step == step }
    grids.append((step, relative))
  }

  func writeReport(at step: Int) throws {
    let records = (try? MetricsLog.read(path: folder.metricsPath)) ?? []
    let manifest = pipeline.manifest
    var summary: [(String, String)] = [
      ("manifest", manifest.source), ("step", "\(step) of \(manifest.training.steps)"),
      ("generator", "\(pipeline.generatorEntry.type), \(pipeline.generator.module.parameterCount) parameters"),
      ("losses", manifest.losses.map(\.type).joined(separator: ", ")),
    ]
    if let teacher = pipeline.teacher { summary.insert(("teacher", teacher.summary), at: 1) }
    if let last = checkpoints.last { summary.append(("last checkpoint", "step \(last)")) }
    try checkpoints.guardingWrites(at: step) {
      try RunReport.write(
        to: folder.reportPath, title: "Distillery run \(manifest.name)", records: records, grids: grids,
        summary: summary, manifestJSON: manifest.resolvedJSON.text())
    }
  }

  /// `generator.safetensors` (EMA weights where configured), `generator.json`, for a
  /// denoiser generator a teacher folder `denoiser/`, for an autoencoder a diffusers `vae/`
  /// folder; then the report.
  func writeOutputs(at step: Int) throws {
    try checkpoints.guardingWrites(at: step) {
      try withEvaluationWeights {
        let module = pipeline.generator.module
        try SafetensorsFile.write(
          module.stateDict(), metadata: ["format": "pt", "distillery": "generator", "step": String(step)],
          to: folder.generatorWeightsPath)
        let config: JSONValue = .object([
          "format": .string("distillery-generator"), "version": .number(1),
          "type": .string(pipeline.generatorEntry.type),
          "generator": pipeline.generator.configJSON,
          "noiseShape": .array(pipeline.generator.noiseShape.map { .number(Double($0)) }),
          "sampleShape": .array(pipeline.generator.sampleShape.map { .number(Double($0)) }),
          "step": .number(Double(step)),
          "ema": .bool(ema != nil && pipeline.manifest.evaluation.useEMA),
        ])
        try AtomicFileWriter.write(Array((config.text() + "\n").utf8), to: folder.generatorConfigPath)
        if let denoising = pipeline.generator as? any DenoiserGenerator {
          try denoising.denoiser.save(folder: folder.denoiserFolder)
        }
        if let autoencoding = pipeline.generator as? any AutoencodingGenerator {
          try autoencoding.autoencoder.save(folder: folder.vaeFolder)
        }
      }
    }
    try writeReport(at: step)
  }
}

extension MetricsLog: MetricSink {
  public func record(step: Int, values: [String: Double]) throws {
    try append(step: step, values: values)
  }
  public func image(step: Int, tag: String, _ image: Tensor) throws {}
  public func finish() throws { close() }
}

extension TensorBoardWriter: MetricSink {
  public func record(step: Int, values: [String: Double]) throws {
    for (key, value) in values.sorted(by: { $0.key < $1.key }) where value.isFinite {
      addScalar(key, value, step: step)
    }
    flush()
    if let error = lastError { throw error }
  }

  /// The image on TensorBoard's Images tab, as a PNG.
  public func image(step: Int, tag: String, _ image: Tensor) throws {
    let shape = image.shape
    addImage(
      tag, pngData: Data(try ImageFile.encodePNG(image)), height: shape[1], width: shape[2], channels: shape[0],
      step: step)
  }

  public func finish() throws { close() }
}
