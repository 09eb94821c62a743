import CProcess
import DistillCore
import DistillDiffusion
import DistillDistributed
import Foundation

/// Why a run stopped early without a bad input: exit code 1 (130 for an interrupt).
public enum RunFailure: Error, CustomStringConvertible {
  /// A loss went NaN or infinite; the last good checkpoint was kept.
  case nonFinite(term: String, step: Int, lastCheckpoint: Int?)
  /// A checkpoint or output could not be written (a full disk); earlier checkpoints were kept.
  case writeFailed(DistillError, step: Int, lastCheckpoint: Int?)
  /// SIGINT or SIGTERM: the step finished and a checkpoint was written.
  case interrupted(step: Int, checkpointWritten: Bool)
  /// Data-parallel: rank 0 failed to write (it reports why); this rank stopped with it.
  case stoppedWithMainRank(step: Int)

  public var description: String {
    func kept(_ step: Int?) -> String {
      step.map {
        "the last good checkpoint (step \($0)) is kept; fix the cause and run again with --resume"
      }
        ?? "no checkpoint had been written yet"
    }
    switch self {
    case .nonFinite(let term, let step, let last):
      return
        "\(term) became non-finite (NaN or infinity) at step \(step + 1); stopped; \(kept(last)). Try a lower learning rate or gradient clipping."
    case .writeFailed(let error, let step, let last):
      return "writing failed at step \(step): \(error); stopped; \(kept(last))"
    case .interrupted(let step, let written):
      return written
        ? "interrupted after step \(step); checkpoint written; continue with --resume"
        : "interrupted after step \(step)"
    case .stoppedWithMainRank(let step):
      return "stopped at step \(step) because rank 0 failed (its message says why)"
    }
  }
}

/// Trains an ``AssembledPipeline`` in a ``RunFolder``: the auxiliary phases and the
/// generator's weighted loss each step, EMA, clipping, the NaN/Inf guard, evaluation on
/// fixed noise, logging, checkpoints, and the final outputs.
///
/// Data-parallel under MPI (docs/distributed.md): every rank runs a ``Trainer`` with the same
/// pipeline and its ``communicator``; each draws rows `rank * batchSize ..< (rank + 1) *
/// batchSize` of the global batch, gradients are averaged before every optimizer step, and
/// rank 0 alone writes. All ranks stop together: a non-finite loss, an interrupt or a failed
/// write on rank 0 ends every rank's ``run(resumedFrom:interruptible:)`` with the same
/// ``RunFailure`` (``stoppedTogether`` is then true); any other error is this rank's alone,
/// and the caller must end the job (`communicator.abort`).
public final class Trainer {
  public let pipeline: AssembledPipeline
  public let folder: RunFolder
  public private(set) var ema: ExponentialMovingAverage?
  public let communicator: any Communicator
  /// Whether the error `run` threw ended every rank's run alike (see the type's note).
  public private(set) var stoppedTogether = false
  let settings: TrainingSettings
  let progress: ProgressReporter
  var reducers: [ObjectIdentifier: GradientReducer] = [:]
  var sinks: [any MetricSink] = []
  var metricsLog: MetricsLog?
  /// Steps completed.
  public private(set) var step = 0
  var lastCheckpoint: Int?
  var grids: [(step: Int, relativePath: String)] = []
  let started = ContinuousClock.now
  var cachedEvaluationContext: EvaluationContext?

  /// - Parameter communicator: the job's ranks; one process by default. Ranks other than 0
  ///   show no progress and write nothing.
  public init(
    pipeline: AssembledPipeline, folder: RunFolder, progress: ProgressReporter,
    communicator: any Communicator = SingleProcessCommunicator()
  ) {
    self.pipeline = pipeline
    self.folder = folder
    self.settings = pipeline.manifest.training
    self.communicator = communicator
    self.progress = communicator.isMain ? progress : ProgressReporter(style: .silent)
    ema = settings.ema.map {
      ExponentialMovingAverage(pipeline.generator.module.namedParameters(), decay: $0)
    }
  }

  // MARK: State

  /// Every tensor a checkpoint holds.
  func stateTensors() -> [String: Tensor] {
    var state: [String: Tensor] = [:]
    for network in pipeline.networks {
      state.merge(prefixed(network.module.stateDict(), "network.\(network.name)")) { a, _ in a }
      state.merge(prefixed(network.optimizer.stateDict(), "optimizer.\(network.name)")) { a, _ in a
      }
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
      throw DistillError.malformed(
        path: location, detail: "does not fit this manifest's networks: \(error)")
    }
    self.step = step
    lastCheckpoint = step
  }

  /// How a checkpoint reaches the disk; tests replace it to simulate a full disk.
  public var checkpointWriter:
    (CheckpointStore, _ step: Int, [String: Tensor], _ keep: Int) throws -> Void = {
      try $0.write(step: $1, tensors: $2, keep: $3)
    }

  func writeCheckpoint() throws {
    do {
      try checkpointWriter(folder.checkpoints, step, stateTensors(), settings.keepCheckpoints)
    } catch let error as DistillError {
      throw RunFailure.writeFailed(error, step: step, lastCheckpoint: lastCheckpoint)
    }
  }

  // MARK: Running

  /// Runs from the current ``step`` to `training.steps`, then writes the final outputs.
  /// - Parameter interruptible: poll SIGINT/SIGTERM (installed by the caller) after each step.
  public func run(resumedFrom resumeStep: Int?, interruptible: Bool = true) throws {
    if communicator.isMain {
      metricsLog = try MetricsLog(path: folder.metricsPath, resumingAt: resumeStep)
      sinks = [metricsLog!, try TensorBoardWriter(directory: folder.eventsFolder)]
    }
    defer {
      for sink in sinks { try? sink.finish() }
    }
    if let resumeStep { try restore(step: resumeStep) }
    try prepareRanks(resumed: resumeStep != nil)
    grids = existingGrids()
    let total = settings.steps
    progress.begin(total: total, from: step)
    while step < total {
      var values = try withComputePrecision(settings.precision) { try trainStep(step) }
      step += 1
      values["lr"] = Double(pipeline.generatorNetwork.optimizer.learningRate)
      let interrupted = try agreeOnStep(
        &values, interrupt: interruptible && distill_interrupt_signal() != 0)
      progress.update(step: step, values: values)
      let checkpoint = step % settings.checkpointEvery == 0 || step == total || interrupted
      let log = step % settings.logEvery == 0 || step == total
      let evaluation = step % pipeline.manifest.evaluation.every == 0 || step == total
      // Whether anything is written depends on the step alone, so every rank skips alike.
      if log || evaluation || checkpoint {
        try onMainRank {
          if log { try record(step, values) }
          if evaluation { try evaluate() }
          if checkpoint { try writeCheckpoint() }
        }
      }
      if checkpoint { lastCheckpoint = step }
      if interrupted {
        progress.finish()
        stoppedTogether = true
        throw RunFailure.interrupted(step: step, checkpointWritten: true)
      }
    }
    progress.finish()
    try onMainRank { try writeOutputs() }
  }

  // MARK: Ranks

  /// One gradient reducer per trained network; on a fresh start, rank 0's initial weights
  /// on every rank (a resumed run read them from the same checkpoint everywhere).
  func prepareRanks(resumed: Bool) throws {
    for network in pipeline.networks {
      let reducer = try GradientReducer(
        network.module.namedParameters(), communicator: communicator)
      if !resumed && communicator.size > 1 { try reducer.broadcastValues() }
      reducers[ObjectIdentifier(network)] = reducer
    }
    if !resumed && communicator.size > 1, let decay = ema?.decay {
      ema = ExponentialMovingAverage(pipeline.generator.module.namedParameters(), decay: decay)
    }
  }

  /// Replaces this rank's step values with their means over all ranks, then stops every rank
  /// alike when a loss was non-finite on any rank (naming the first such term in update
  /// order). Returns whether any rank was interrupted. One collective per step.
  func agreeOnStep(_ values: inout [String: Double], interrupt: Bool) throws -> Bool {
    let keys = values.keys.sorted()
    let flags = nonFinite.map { $0 ? 1.0 : 0 }
    var vector = keys.map { values[$0]! } + flags + [interrupt ? 1 : 0]
    if communicator.size > 1 { vector = try communicator.allreduceMean(vector) }
    for (key, value) in zip(keys, vector) { values[key] = value }
    if let first = zip(termNames, vector[keys.count...]).first(where: { $0.1 > 0 })?.0 {
      stoppedTogether = true
      throw RunFailure.nonFinite(term: first, step: step - 1, lastCheckpoint: lastCheckpoint)
    }
    return vector.last! > 0
  }

  /// Runs `body` (writes) on rank 0 alone; every rank learns whether it failed, and stops
  /// with it if so.
  func onMainRank(_ body: () throws -> Void) throws {
    var failure: (any Error)?
    if communicator.isMain {
      do { try body() } catch { failure = error }
    }
    if communicator.size > 1, try communicator.allreduceSum([failure == nil ? 0 : 1])[0] > 0,
      failure == nil
    {
      failure = RunFailure.stoppedWithMainRank(step: step)
    }
    if let failure {
      stoppedTogether = true
      throw failure
    }
  }

  func streamRNG(_ step: Int, phase: Int, update: Int) -> RandomGenerator {
    RandomGenerator(seed: pipeline.manifest.seed).fork(
      UInt64(step) << 20 | UInt64(phase) << 10 | UInt64(update))
  }

  func context(_ step: Int, _ phase: StepContext.Phase, stream: RandomGenerator) -> StepContext {
    let rows = communicator.rank * settings.batchSize..<(communicator.rank + 1) * settings.batchSize
    return StepContext(
      step: step, phase: phase, rows: rows, globalBatchSize: communicator.size * settings.batchSize,
      rank: communicator.rank, generator: pipeline.generator, teacher: pipeline.teacher,
      schedule: pipeline.context.schedule, scores: pipeline.scores, data: pipeline.data,
      stream: stream)
  }

  /// The terms whose losses are checked for NaN/Inf, in update order: auxiliary phases,
  /// then the generator's losses.
  var termNames: [String] {
    pipeline.auxiliaryPhases.map { "auxiliary phase \"\($0.name)\"" }
      + pipeline.losses.enumerated().map { "losses[\($0.offset)] (\($0.element.entry.type))" }
  }
  /// This step's verdict per term of ``termNames``.
  var nonFinite: [Bool] = []

  /// One training step: auxiliary phases, then the generator, as the update order says. A
  /// non-finite loss is noted in ``nonFinite`` and the step goes on, so that every rank
  /// reaches the same collectives; ``agreeOnStep(_:interrupt:)`` then stops the run.
  func trainStep(_ step: Int) throws -> [String: Double] {
    var values: [String: Double] = [:]
    nonFinite = [Bool](
      repeating: false, count: pipeline.auxiliaryPhases.count + pipeline.losses.count)
    if settings.auxiliariesUpdate(at: step) {
      for (index, phase) in pipeline.auxiliaryPhases.enumerated() {
        for repetition in 0..<phase.updatesPerStep {
          let context = context(
            step, .auxiliary(name: phase.name),
            stream: streamRNG(step, phase: index + 1, update: repetition))
          for network in pipeline.networks { network.module.zeroGrad() }
          let loss = try phase.loss(context)
          let value = Double(loss.item)
          if !value.isFinite { nonFinite[index] = true }
          loss.backward()
          values["aux/\(phase.name)"] = value
          values.merge(context.logged) { _, b in b }
          for network in [phase.network] + phase.additionalNetworks {
            if let norm = try update(network) { values["grad-norm/\(network.name)"] = norm }
          }
        }
      }
    }
    if settings.generatorUpdates(at: step) {
      let context = context(step, .generator, stream: streamRNG(step, phase: 0, update: 0))
      for network in pipeline.networks { network.module.zeroGrad() }
      var total: Tensor?
      var sum = 0.0
      for (index, (entry, term)) in pipeline.losses.enumerated() {
        let loss = try term.loss(context)
        let value = Double(loss.item)
        if !value.isFinite { nonFinite[pipeline.auxiliaryPhases.count + index] = true }
        let weight = entry.has("weight") ? entry.double("weight") : 1
        values["loss/\(lossName(index, entry))"] = value
        sum += weight * value
        let weighted = weight == 1 ? loss : loss * Float(weight)
        total = total.map { $0 + weighted } ?? weighted
      }
      values["loss/total"] = sum
      values.merge(context.logged) { _, b in b }
      total?.backward()
      if let norm = try update(pipeline.generatorNetwork) { values["grad-norm/generator"] = norm }
      ema?.update()
    }
    return values
  }

  /// A loss's metric name: its type, with the index when the type appears twice.
  func lossName(_ index: Int, _ entry: ComponentEntry) -> String {
    pipeline.losses.filter { $0.entry.type == entry.type }.count > 1
      ? "\(entry.type)-\(index)" : entry.type
  }

  /// Averages `network`'s gradients over the ranks, clips, sets the scheduled learning rate
  /// and steps its optimizer; returns the gradient norm when clipping measured it.
  func update(_ network: TrainedNetwork) throws -> Double? {
    try reducers[ObjectIdentifier(network)]?.allreduceMean()
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
      guard name.hasPrefix("step-"), name.hasSuffix(".png"),
        let s = Int(name.dropFirst(5).dropLast(4)), s <= step
      else { return nil }
      return (s, "samples/\(name)")
    }.sorted { $0.0 < $1.0 }
  }
}
