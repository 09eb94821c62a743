import CProcess
import DistillCore
import DistillDiffusion
import DistillDistributed
import Foundation

/// Trains an ``AssembledPipeline`` in a ``RunFolder``: the auxiliary phases and the
/// generator's weighted loss each step, EMA, clipping and the NaN/Inf guard. It hands the
/// rest to the two types beside it: ``RunCheckpoints`` (checkpoint state, restore, atomic
/// writes, write failures) and ``RunRecorder`` (metrics, evaluation, grids, report, final
/// outputs).
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
  public let ema: ExponentialMovingAverage?
  public let communicator: any Communicator
  public let checkpoints: RunCheckpoints
  public let recorder: RunRecorder
  /// Whether the error `run` threw ended every rank's run alike (see the type's note).
  public private(set) var stoppedTogether = false
  let settings: TrainingSettings
  let progress: ProgressReporter
  var reducers: [ObjectIdentifier: GradientReducer] = [:]
  /// Steps completed.
  public private(set) var step = 0

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
    let ema = settings.ema.map { ExponentialMovingAverage(pipeline.generator.module.namedParameters(), decay: $0) }
    self.ema = ema
    checkpoints = RunCheckpoints(
      store: folder.checkpoints, pipeline: pipeline, ema: ema, keep: settings.keepCheckpoints)
    recorder = RunRecorder(
      pipeline: pipeline, folder: folder, ema: ema, checkpoints: checkpoints, progress: self.progress)
  }

  /// Restores the state of the checkpoint at `step`.
  public func restore(step: Int) throws {
    try checkpoints.restore(step: step)
    self.step = step
  }

  // MARK: Running

  /// Runs from the current ``step`` to `training.steps`, then writes the final outputs.
  /// - Parameter interruptible: poll SIGINT/SIGTERM (installed by the caller) after each step.
  public func run(resumedFrom resumeStep: Int?, interruptible: Bool = true) throws {
    if communicator.isMain { try recorder.open(resumingAt: resumeStep) }
    defer { recorder.close() }
    if let resumeStep { try restore(step: resumeStep) }
    try prepareRanks(resumed: resumeStep != nil)
    recorder.findGrids(upTo: step)
    let total = settings.steps
    progress.begin(total: total, from: step)
    while step < total {
      var values = try withComputePrecision(settings.precision) {
        try withActivationRecompute(settings.recompute) { try trainStep(step) }
      }
      step += 1
      values["lr"] = Double(pipeline.generatorNetwork.optimizer.learningRate)
      let interrupted = try agreeOnStep(&values, interrupt: interruptible && distill_interrupt_signal() != 0)
      progress.update(step: step, values: values)
      let checkpoint = step % settings.checkpointEvery == 0 || step == total || interrupted
      let log = step % settings.logEvery == 0 || step == total
      let evaluation = step % pipeline.manifest.evaluation.every == 0 || step == total
      // Whether anything is written depends on the step alone, so every rank skips alike.
      if log || evaluation || checkpoint {
        try onMainRank {
          if log { try recorder.record(step, values) }
          if evaluation { try recorder.evaluate(at: step) }
          if checkpoint { try checkpoints.write(step: step) }
        }
      }
      if checkpoint { checkpoints.last = step }
      if interrupted {
        progress.finish()
        stoppedTogether = true
        throw RunFailure.interrupted(step: step, checkpointWritten: true)
      }
    }
    progress.finish()
    try onMainRank { try recorder.writeOutputs(at: step) }
  }

  // MARK: Ranks

  /// One gradient reducer per trained network; on a fresh start, rank 0's initial weights
  /// on every rank (a resumed run read them from the same checkpoint everywhere), and the EMA
  /// restarted from them.
  func prepareRanks(resumed: Bool) throws {
    for network in pipeline.networks {
      let reducer = try GradientReducer(network.module.namedParameters(), communicator: communicator)
      if !resumed && communicator.size > 1 { try reducer.broadcastValues() }
      reducers[ObjectIdentifier(network)] = reducer
    }
    if !resumed && communicator.size > 1, let ema {
      try ema.loadStateDict(
        Dictionary(uniqueKeysWithValues: ema.parameters.map { ($0.name, $0.parameter.value) }))
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
      throw RunFailure.nonFinite(term: first, step: step - 1, lastCheckpoint: checkpoints.last)
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
    if communicator.size > 1, try communicator.allreduceSum([failure == nil ? 0 : 1])[0] > 0, failure == nil {
      failure = RunFailure.stoppedWithMainRank(step: step)
    }
    if let failure {
      stoppedTogether = true
      throw failure
    }
  }

  // MARK: Steps

  func streamRNG(_ step: Int, phase: Int, update: Int) -> RandomGenerator {
    RandomGenerator(seed: pipeline.manifest.seed).fork(UInt64(step) << 20 | UInt64(phase) << 10 | UInt64(update))
  }

  func context(_ step: Int, _ phase: StepContext.Phase, stream: RandomGenerator) -> StepContext {
    let rows = communicator.rank * settings.batchSize..<(communicator.rank + 1) * settings.batchSize
    return StepContext(
      step: step, phase: phase, rows: rows, globalBatchSize: communicator.size * settings.batchSize,
      rank: communicator.rank, generator: pipeline.generator, teacher: pipeline.teacher,
      schedule: pipeline.context.schedule, scores: pipeline.scores, data: pipeline.data, stream: stream)
  }

  /// The terms whose losses are checked for NaN/Inf, in update order: auxiliary phases,
  /// then the generator's losses.
  var termNames: [String] {
    pipeline.auxiliaryPhases.map { "auxiliary phase \"\($0.name)\"" }
      + pipeline.losses.map { "\($0.path) (\($0.name))" }
  }
  /// This step's verdict per term of ``termNames``.
  var nonFinite: [Bool] = []

  /// One training step: auxiliary phases, then the generator, as the update order says. A
  /// non-finite loss is noted in ``nonFinite`` and the step goes on, so that every rank
  /// reaches the same collectives; ``agreeOnStep(_:interrupt:)`` then stops the run.
  func trainStep(_ step: Int) throws -> [String: Double] {
    var values: [String: Double] = [:]
    let phases = pipeline.auxiliaryPhases
    nonFinite = [Bool](repeating: false, count: phases.count + pipeline.losses.count)
    if settings.auxiliariesUpdate(at: step) {
      for (index, phase) in phases.enumerated() {
        for repetition in 0..<phase.updatesPerStep {
          let context = context(
            step, .auxiliary(name: phase.name), stream: streamRNG(step, phase: index + 1, update: repetition))
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
      for (index, loss) in pipeline.losses.enumerated() {
        let value = try loss.term.loss(context)
        let scalar = Double(value.item)
        if !scalar.isFinite { nonFinite[phases.count + index] = true }
        values["loss/\(loss.name)"] = scalar
        sum += loss.weight * scalar
        let weighted = loss.weight == 1 ? value : value * Float(loss.weight)
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
}
