import DistillCore
import DistillDiffusion
import Foundation

/// How ``writePairs(teacher:options:folder:replace:progress:)`` samples and splits.
public struct PairsOptions: Sendable {
  public var count: Int
  public var sampler: TeacherSamplerKind
  public var steps: Int
  public var seed: UInt64
  /// Pairs per shard file.
  public var shardSize: Int
  /// Samples per network call. Batches cover fixed index ranges (`b·batchSize ..< (b+1)·batchSize`)
  /// whatever the shard size, so the shard size never changes a pair.
  public var batchSize: Int
  /// Clamp x̂₀ to ±1 in DDPM/DDIM steps (for image models).
  public var clipSample: Bool
  /// Classifier-free guidance on a class-conditional or text-to-image teacher (1 = none).
  public var guidance: Double
  /// The prompts of a text-to-image teacher and their embeddings `[prompts, L, D]` (its text
  /// encoder's): pair `i` is of prompt `i mod prompts.count`.
  public var prompts: (texts: [String], embeddings: Tensor)?

  public init(
    count: Int, sampler: TeacherSamplerKind = .ddim, steps: Int = 50, seed: UInt64 = 0, shardSize: Int = 1024,
    batchSize: Int = 64, clipSample: Bool = false, guidance: Double = 1,
    prompts: (texts: [String], embeddings: Tensor)? = nil
  ) {
    self.count = count
    self.sampler = sampler
    self.steps = steps
    self.seed = seed
    self.shardSize = shardSize
    self.batchSize = batchSize
    self.clipSample = clipSample
    self.guidance = guidance
    self.prompts = prompts
  }
}

/// What an existing folder at the output path holds.
public enum PairsFolderState: Equatable {
  case absentOrEmpty
  /// A pairs folder of the same pairs (maybe split differently).
  case samePairs(PairsIndex)
  /// A pairs folder of other pairs.
  case otherPairs(PairsIndex)
  /// Files that are not a pairs folder.
  case otherFiles
}

/// Inspects `folder` before writing pairs into it.
public func pairsFolderState(_ folder: String, for index: PairsIndex) -> PairsFolderState {
  let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
  if names.isEmpty { return .absentOrEmpty }
  guard let existing = try? PairsIndex.read(folder: folder) else {
    // A run that failed before its index: only shards, prompt embeddings and temporary files.
    let ours = names.allSatisfy {
      $0.hasPrefix("shard-") || $0.hasPrefix(".") || $0 == PairsIndex.promptEmbeddingsFileName
    }
    return ours ? .absentOrEmpty : .otherFiles
  }
  return existing.samePairs(as: index) ? .samePairs(existing) : .otherPairs(existing)
}

/// Draws `options.count` noise-sample pairs from `teacher` and writes them as shards and a
/// `pairs.json` index into `folder` (created when absent).
///
/// The noise of pair `i` is `Tensor.normal([1] + sampleShape)` from
/// `RandomGenerator(seed: seed).fork(i)`; DDPM's per-step noise continues that stream. For a
/// class-conditional teacher pair `i` is of class `i mod classes` (every class its share),
/// sampled with `options.guidance`, and the shards hold the labels; for a text-to-image teacher
/// pair `i` is of prompt `i mod prompts` of `options.prompts`, the shards hold the prompt
/// indices and the folder the prompts' embeddings. With a
/// deterministic sampler (DDIM, Euler, Heun) each pair depends on the seed, the sampler, the
/// steps and the batch size alone: the shard size and the thread count change nothing, and the
/// same options write byte-identical files. Every file is written under a temporary name and
/// renamed; the index last, after removing an older index first, so a folder with an index
/// always has complete shards.
///
/// - Parameter replace: replace a folder holding other pairs; without it such a folder is
///   refused. A folder holding other files is always refused.
/// - Parameter progress: called after each batch with (pairs done, total).
/// - Throws: ``SamplingSettingError`` for bad options, ``PairsFolderError`` for a folder that
///   is refused, ``DistillError`` for a shape the teacher cannot take, a text-to-image teacher
///   without prompts (at `data`), or a folder that cannot be written.
@discardableResult
public func writePairs(
  teacher: any Denoiser, options: PairsOptions, folder: String, replace: Bool = false,
  progress: ((Int, Int) -> Void)? = nil
) throws -> PairsIndex {
  func fail(_ setting: SamplingSettingError.Setting, _ expected: String, _ found: String) -> SamplingSettingError {
    SamplingSettingError(setting: setting, expected: expected, found: found)
  }
  guard options.count >= 1, options.count < 1 << 24 else { throw fail(.count, "1...16777215", String(options.count)) }
  guard options.shardSize >= 1 else { throw fail(.shardSize, "at least 1", String(options.shardSize)) }
  try checkSampling(
    teacher, sampler: options.sampler, steps: options.steps, count: options.count, batchSize: options.batchSize)
  guard options.seed < 1 << 53 else { throw fail(.seed, "0...2^53-1 (exact in JSON)", String(options.seed)) }
  guard let shape = teacher.sampleShape else {
    throw DistillError.invalidValue(
      location: "teacher", expected: "a teacher with a sample shape (a UNet config with sample_size)", found: "none")
  }
  try teacher.validateInput(shape: [1] + shape, location: "sample shape")
  if options.guidance != 1 && teacher.classes?.null == nil && teacher.prompts == nil {
    throw fail(
      .guidance, "1 for a teacher " + (teacher.classes == nil ? "without classes" : "without a null class"),
      String(options.guidance))
  }
  let classes = teacher.classes?.count
  let prompts = try checkedPrompts(options.prompts, teacher: teacher)

  var shards: [PairsIndex.Shard] = []
  var start = 0
  while start < options.count {
    let n = min(options.shardSize, options.count - start)
    shards.append(.init(file: PairsIndex.shardName(shards.count), count: n))
    start += n
  }
  let index = PairsIndex(
    sampleShape: shape, count: options.count, teacher: teacher.summary, sampler: options.sampler.rawValue,
    steps: options.steps, seed: options.seed, batchSize: options.batchSize, clipSample: options.clipSample,
    classes: classes, prompts: prompts?.texts, guidance: classes == nil && prompts == nil ? 1 : options.guidance,
    shards: shards)

  let manager = FileManager.default
  let indexPath = (folder as NSString).appendingPathComponent(PairsIndex.fileName)
  switch pairsFolderState(folder, for: index) {
  case .absentOrEmpty, .samePairs: break
  case .otherPairs(let existing):
    guard replace else { throw PairsFolderError.otherPairs(folder: folder, existing) }
  case .otherFiles:
    throw PairsFolderError.otherFiles(folder: folder)
  }
  do {
    try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
    if manager.fileExists(atPath: indexPath) { try manager.removeItem(atPath: indexPath) }
    let embeddingsPath = (folder as NSString).appendingPathComponent(PairsIndex.promptEmbeddingsFileName)
    if manager.fileExists(atPath: embeddingsPath) { try manager.removeItem(atPath: embeddingsPath) }
  } catch {
    throw DistillError.io(path: folder, reason: "cannot prepare the pairs folder: \(error.localizedDescription)")
  }

  let valuesPerSample = shape.reduce(1, *)
  let root = RandomGenerator(seed: options.seed)
  var pendingNoise: [Tensor] = []
  var pendingSamples: [Tensor] = []
  var pendingLabels: [Int] = []
  var pendingPrompts: [Int] = []
  var pendingCount = 0
  var shardNumber = 0
  var done = 0
  let batches = (options.count + options.batchSize - 1) / options.batchSize
  for b in 0..<batches {
    let lo = b * options.batchSize
    let hi = min(lo + options.batchSize, options.count)
    var streams = (lo..<hi).map { root.fork(UInt64($0)) }
    let noise = Tensor.concat(streams.indices.map { Tensor.normal([1] + shape, using: &streams[$0]) }, axis: 0)
    var condition = Condition(labels: classes.map { count in (lo..<hi).map { $0 % count } })
    let promptRows = prompts.map { p in (lo..<hi).map { $0 % p.texts.count } }
    if let prompts, let promptRows { condition.embeddings = prompts.embeddings.gatheringRows(promptRows) }
    let samples = try withoutGradients {
      try sampleBatch(teacher.guided(options.guidance), condition, noise: noise, options: options, streams: &streams)
    }
    pendingLabels += condition.labels ?? []
    pendingPrompts += promptRows ?? []
    precondition(samples.shape == noise.shape && samples.count == (hi - lo) * valuesPerSample)
    pendingNoise.append(noise)
    pendingSamples.append(samples)
    pendingCount += hi - lo
    // Write every shard the pending rows complete.
    while shardNumber < shards.count, pendingCount >= shards[shardNumber].count {
      let n = shards[shardNumber].count
      let allNoise = Tensor.concat(pendingNoise, axis: 0)
      let allSamples = Tensor.concat(pendingSamples, axis: 0)
      let path = (folder as NSString).appendingPathComponent(shards[shardNumber].file)
      var tensors = ["noise": allNoise.sliced(axis: 0, 0..<n), "samples": allSamples.sliced(axis: 0, 0..<n)]
      if classes != nil {
        tensors["labels"] = Tensor(shape: [n], scalars: pendingLabels.prefix(n).map(Float.init))
        pendingLabels.removeFirst(n)
      }
      if prompts != nil {
        tensors["prompts"] = Tensor(shape: [n], scalars: pendingPrompts.prefix(n).map(Float.init))
        pendingPrompts.removeFirst(n)
      }
      try SafetensorsFile.write(
        tensors, metadata: ["format": PairsIndex.format, "shard": String(shardNumber)], to: path)
      pendingNoise = pendingCount > n ? [allNoise.sliced(axis: 0, n..<pendingCount)] : []
      pendingSamples = pendingCount > n ? [allSamples.sliced(axis: 0, n..<pendingCount)] : []
      pendingCount -= n
      shardNumber += 1
    }
    done = hi
    progress?(done, options.count)
  }
  precondition(shardNumber == shards.count && pendingCount == 0)
  // Shards of an earlier, larger split that this one does not list.
  let listed = Set(shards.map(\.file))
  for name in (try? manager.contentsOfDirectory(atPath: folder)) ?? []
  where name.hasPrefix("shard-") && name.hasSuffix(".safetensors") && !listed.contains(name) {
    try? manager.removeItem(atPath: (folder as NSString).appendingPathComponent(name))
  }
  if let prompts {
    try SafetensorsFile.write(
      ["embeddings": prompts.embeddings], metadata: ["format": PairsIndex.format],
      to: (folder as NSString).appendingPathComponent(PairsIndex.promptEmbeddingsFileName))
  }
  try AtomicFileWriter.write(Array((index.json.text() + "\n").utf8), to: indexPath)
  return index
}

/// The prompts of `options` checked against `teacher`: required for a teacher that takes
/// prompts (embeddings of its width), refused for one that does not.
private func checkedPrompts(_ prompts: (texts: [String], embeddings: Tensor)?, teacher: any Denoiser) throws
  -> (texts: [String], embeddings: Tensor)?
{
  switch (prompts, teacher.prompts) {
  case (nil, nil): return nil
  case (nil, _?):
    throw DistillError.invalidValue(
      location: "data",
      expected: "a captions data source: the prompts of the text-to-image teacher's pairs (\(teacher.summary))",
      found: "no prompts")
  case (_?, nil):
    throw DistillError.invalidValue(
      location: "data", expected: "no prompts for the teacher \"\(teacher.summary)\", which takes none",
      found: "a captions data source")
  case (let given?, let conditioning?):
    precondition(
      !given.texts.isEmpty && given.embeddings.shape == [given.texts.count, conditioning.length, conditioning.width],
      "prompt embeddings \(given.embeddings.shape) for \(given.texts.count) prompts of [\(conditioning.length), \(conditioning.width)]")
    return given
  }
}

/// One batch of the teacher's sampler from `noise` for `condition`; DDPM draws its step noise
/// per sample from `streams`.
private func sampleBatch(
  _ teacher: any Denoiser, _ condition: Condition, noise: Tensor, options: PairsOptions, streams: inout [RandomGenerator]
) throws -> Tensor {
  let schedule = teacher.schedule
  let prediction = teacher.prediction
  let model = teacher.model(condition)
  switch options.sampler {
  case .ddpm:
    let sampler = DDPMSampler(schedule: schedule, prediction: prediction, clipSample: options.clipSample)
    var local = streams
    defer { streams = local }
    return try sampler.sample(model: model, initialNoise: noise, steps: options.steps) { shape in
      let rowShape = [1] + shape.dropFirst()
      return Tensor.concat(local.indices.map { Tensor.normal(rowShape, using: &local[$0]) }, axis: 0)
    }
  case .ddim, .euler, .heun:
    return try deterministicSample(
      model: model, schedule: schedule, prediction: prediction, sampler: options.sampler, steps: options.steps,
      noise: noise, spacing: .leading, clipSample: options.clipSample)
  }
}

/// A folder ``writePairs(teacher:options:folder:replace:progress:)`` refuses to write into.
public enum PairsFolderError: Error, CustomStringConvertible {
  /// A pairs folder of other pairs, written without `replace`.
  case otherPairs(folder: String, PairsIndex)
  /// A folder holding files that are not pairs.
  case otherFiles(folder: String)

  public var description: String { description(replaceHint: "") }

  /// The message, with `replaceHint` (how to replace other pairs) after what was expected.
  public func description(replaceHint: String) -> String {
    switch self {
    case .otherPairs(let folder, let existing):
      "\(folder): expected an empty folder, or the same pairs\(replaceHint), found other pairs "
        + "(\(existing.count) from \(existing.sampler), \(existing.steps) steps, seed \(existing.seed), \(existing.teacher))"
    case .otherFiles(let folder):
      "\(folder): expected a new or empty folder, or a pairs folder, found a folder holding other files"
    }
  }
}
