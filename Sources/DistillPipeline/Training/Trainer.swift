import CProcess
import DistillCore
import DistillDiffusion
import Foundation

/// Why a run stopped early without a bad input: exit code 1 (130 for an interrupt).
public enum RunFailure: Error, CustomStringConvertible {
  /// A loss went NaN or infinite; the last good checkpoint was kept.
  case nonFinite(term: String, step: Int, lastCheckpoint: Int?)
  /// A checkpoint or output could not be written (a full disk); earlier checkpoints were kept.
  case writeFailed(DistillError, step: Int, lastCheckpoint: Int?)
  /// SIGINT or SIGTERM: the step finished and a checkpoint was written.
  case interrupted(step: Int, checkpointWritten: Bool)

  public var description: String {
    func kept(_ step: Int?) -> String {
      step.map { "the last good checkpoint (step \($0)) is kept; fix the cause and run again with --resume" }
        ?? "no checkpoint had been written yet"
    }
    switch self {
    case .nonFinite(let term, let step, let last):
      return "\(term) became non-finite (NaN or infinity) at step \(step + 1); stopped; \(kept(last)). Try a lower learning rate or gradient clipping."
    case .writeFailed(let error, let step, let last):
      return "writing failed at step \(step): \(error); stopped; \(kept(last))"
    case .interrupted(let step, let written):
      return written
        ? "interrupted after step \(step); checkpoint written; continue with --resume"
        : "interrupted after step \(step)"
    }
  }
}

/// Trains an ``AssembledPipeline`` in a ``RunFolder``: the auxiliary phases and the
/// generator's weighted loss each step, EMA, clipping, the NaN/Inf guard, evaluation on
/// fixed noise, logging, checkpoints, and the final outputs.
public final class Trainer {
  public let pipeline: AssembledPipeline
  public let folder: RunFolder
  public let ema: ExponentialMovingAverage?
  let settings: TrainingSettings
  let progress: ProgressReporter
  var sinks: [any MetricSink] = []
  var metricsLog: MetricsLog?
  /// Steps completed.
  public private(set) var step = 0
  var lastCheckpoint: Int?
  var grids: [(step: Int, relativePath: String)] = []
  let started = ContinuousClock.now
  var cachedEvaluationContext: EvaluationContext?

  public init(pipeline: AssembledPipeline, folder: RunFolder, progress: ProgressReporter) {
    self.pipeline = pipeline
    self.folder = folder
    self.settings = pipeline.manifest.training
    self.progress = progress
    ema = settings.ema.map { ExponentialMovingAverage(pipeline.generator.module.namedParameters(), decay: $0) }
  }

  // MARK: State

  /// Every tensor a checkpoint holds.
  func stateTensors() -> [String: Tensor] {
    var state: [String: Tensor] = [:]
    for network in pipeline.networks {
      state.merge(prefixed(network.module.stateDict(), "network.\(network.name)")) { a, _ in a }
      state.merge(prefixed(network.optimizer.stateDict(), "optimizer.\(network.name)")) { a, _ in a }
    }
    if let ema { state.merge(prefixed(ema.stateDict(), "ema.generator")) { a, _ in a } }
    for (prefix, component) in pipeline.context.checkpointables {
      state.merge(prefixed(component.checkpointState(), "state.\(prefix)")) { a, _ in a }
    }
    return state
  }

  /// Restores the state of the checkpoint at `step`.
  public func restore(step: Int) throws {
    let state = try folder.checkpoints.read(step: step)
    let location = folder.checkpoints.path(step: step)
    do {
      for network in pipeline.networks {
        try network.module.load(tensors(state, under: "network.\(network.name)"), strict: true)
        try network.optimizer.loadStateDict(tensors(state, under: "optimizer.\(network.name)"))
      }
      if let ema { try ema.loadStateDict(tensors(state, under: "ema.generator")) }
      for (prefix, component) in pipeline.context.checkpointables {
        try component.restore(tensors(state, under: "state.\(prefix)"))
      }
    } catch let error as DistillError {
      throw DistillError.malformed(path: location, detail: "does not fit this manifest's networks: \(error)")
    }
    self.step = step
    lastCheckpoint = step
  }

  /// How a checkpoint reaches the disk; tests replace it to simulate a full disk.
  public var checkpointWriter: (CheckpointStore, _ step: Int, [String: Tensor], _ keep: Int) throws -> Void = {
    try $0.write(step: $1, tensors: $2, keep: $3)
  }

  func writeCheckpoint() throws {
    do {
      try checkpointWriter(folder.checkpoints, step, stateTensors(), settings.keepCheckpoints)
      lastCheckpoint = step
    } catch let error as DistillError {
      throw RunFailure.writeFailed(error, step: step, lastCheckpoint: lastCheckpoint)
    }
  }

  // MARK: Running

  /// Runs from the current ``step`` to `training.steps`, then writes the final outputs.
  /// - Parameter interruptible: poll SIGINT/SIGTERM (installed by the caller) after each step.
  public func run(resumedFrom resumeStep: Int?, interruptible: Bool = true) throws {
    metricsLog = try MetricsLog(path: folder.metricsPath, resumingAt: resumeStep)
    let board = try TensorBoardWriter(directory: folder.eventsFolder)
    sinks = [metricsLog!, board]
    defer {
      for sink in sinks { try? sink.finish() }
    }
    if let resumeStep { try restore(step: resumeStep) }
    grids = existingGrids()
    let total = settings.steps
    progress.begin(total: total, from: step)
    while step < total {
      var values = try trainStep(step)
      step += 1
      values["lr"] = Double(pipeline.generatorNetwork.optimizer.learningRate)
      if step % settings.logEvery == 0 || step == total { try record(step, values) }
      progress.update(step: step, values: values)
      if step % pipeline.manifest.evaluation.every == 0 || step == total { try evaluate() }
      if step % settings.checkpointEvery == 0 || step == total { try writeCheckpoint() }
      if interruptible, distill_interrupt_signal() != 0 {
        if lastCheckpoint != step { try writeCheckpoint() }
        progress.finish()
        throw RunFailure.interrupted(step: step, checkpointWritten: true)
      }
    }
    progress.finish()
    try writeOutputs()
  }

  func streamRNG(_ step: Int, phase: Int, update: Int) -> RandomGenerator {
    RandomGenerator(seed: pipeline.manifest.seed).fork(UInt64(step) << 20 | UInt64(phase) << 10 | UInt64(update))
  }

  func context(_ step: Int, _ phase: StepContext.Phase, rng: RandomGenerator) -> StepContext {
    StepContext(
      step: step, phase: phase, batchSize: settings.batchSize, generator: pipeline.generator,
      teacher: pipeline.teacher, schedule: pipeline.context.schedule, scores: pipeline.scores, data: pipeline.data,
      rng: rng)
  }

  /// One training step: auxiliary phases, then the generator, as the update order says.
  func trainStep(_ step: Int) throws -> [String: Double] {
    var values: [String: Double] = [:]
    if settings.auxiliariesUpdate(at: step) {
      for (index, phase) in pipeline.auxiliaryPhases.enumerated() {
        for repetition in 0..<phase.updatesPerStep {
          let context = context(step, .auxiliary(name: phase.name), rng: streamRNG(step, phase: index + 1, update: repetition))
          for network in pipeline.networks { network.module.zeroGrad() }
          let loss = try phase.loss(context)
          let value = Double(loss.item)
          guard value.isFinite else {
            throw RunFailure.nonFinite(term: "auxiliary phase \"\(phase.name)\"", step: step, lastCheckpoint: lastCheckpoint)
          }
          loss.backward()
          values["aux/\(phase.name)"] = value
          values.merge(context.logged) { _, b in b }
          if let norm = update(phase.network) { values["grad-norm/\(phase.network.name)"] = norm }
        }
      }
    }
    if settings.generatorUpdates(at: step) {
      let context = context(step, .generator, rng: streamRNG(step, phase: 0, update: 0))
      for network in pipeline.networks { network.module.zeroGrad() }
      var total: Tensor?
      var sum = 0.0
      for (index, (entry, term)) in pipeline.losses.enumerated() {
        let loss = try term.loss(context)
        let value = Double(loss.item)
        guard value.isFinite else {
          throw RunFailure.nonFinite(
            term: "losses[\(index)] (\(entry.type))", step: step, lastCheckpoint: lastCheckpoint)
        }
        let weight = entry.has("weight") ? entry.double("weight") : 1
        values["loss/\(lossName(index, entry))"] = value
        sum += weight * value
        let weighted = weight == 1 ? loss : loss * Float(weight)
        total = total.map { $0 + weighted } ?? weighted
      }
      values["loss/total"] = sum
      values.merge(context.logged) { _, b in b }
      total?.backward()
      if let norm = update(pipeline.generatorNetwork) { values["grad-norm/generator"] = norm }
      ema?.update()
    }
    return values
  }

  /// A loss's metric name: its type, with the index when the type appears twice.
  func lossName(_ index: Int, _ entry: ComponentEntry) -> String {
    pipeline.losses.filter { $0.entry.type == entry.type }.count > 1 ? "\(entry.type)-\(index)" : entry.type
  }

  /// Clips, sets the scheduled learning rate and steps `network`'s optimizer; returns the
  /// gradient norm when clipping measured it.
  func update(_ network: TrainedNetwork) -> Double? {
    var norm: Double?
    if let limit = network.clipGradientNorm {
      norm = Double(clipGradientNorm(network.module.parameters(), maxNorm: limit))
    }
    network.optimizer.learningRate = network.schedule.learningRate(
      base: network.baseLearningRate, atStep: network.optimizer.stepCount)
    network.optimizer.step()
    return norm
  }

  func record(_ step: Int, _ values: [String: Double]) throws {
    do {
      for sink in sinks { try sink.record(step: step, values: values) }
    } catch let error as DistillError {
      throw RunFailure.writeFailed(error, step: step, lastCheckpoint: lastCheckpoint)
    }
  }

  func existingGrids() -> [(step: Int, relativePath: String)] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.samplesFolder)) ?? []
    return names.compactMap { name -> (Int, String)? in
      guard name.hasPrefix("step-"), name.hasSuffix(".png"), let s = Int(name.dropFirst(5).dropLast(4)), s <= step
      else { return nil }
      return (s, "samples/\(name)")
    }.sorted { $0.0 < $1.0 }
  }
}
