import DistillCore
import DistillDiffusion

/// The checkpoints of a run, in one owner: what a checkpoint holds (every trained network and
/// its optimizer, the EMA, components' own state), restoring it, writing it atomically, and the
/// mapping of every failed write of the run (checkpoints, metrics, grids, report, outputs) to
/// ``RunFailure/writeFailed(_:step:lastCheckpoint:)``.
public final class RunCheckpoints {
  public let store: CheckpointStore
  let pipeline: AssembledPipeline
  let ema: ExponentialMovingAverage?
  let keep: Int
  /// The step of the newest checkpoint this run wrote or resumed from.
  public internal(set) var last: Int?
  /// How a checkpoint reaches the disk; tests replace it to simulate a full disk.
  public var writer: (CheckpointStore, _ step: Int, [String: Tensor], _ keep: Int) throws -> Void = {
    try $0.write(step: $1, tensors: $2, keep: $3)
  }

  init(store: CheckpointStore, pipeline: AssembledPipeline, ema: ExponentialMovingAverage?, keep: Int) {
    self.store = store
    self.pipeline = pipeline
    self.ema = ema
    self.keep = keep
  }

  /// A part of a checkpoint: its key prefix, its state, and how it is restored.
  typealias Part = (prefix: String, state: () -> [String: Tensor], restore: ([String: Tensor]) throws -> Void)

  /// What a checkpoint holds: every trained network and its optimizer, the EMA and components'
  /// own state.
  var parts: [Part] {
    var parts = pipeline.networks.flatMap { network -> [Part] in
      [
        ("network.\(network.name)", network.module.stateDict, { try network.module.load($0, strict: true) }),
        ("optimizer.\(network.name)", { network.optimizer.stateDict() }, { try network.optimizer.loadStateDict($0) }),
      ]
    }
    if let ema { parts.append(("ema.generator", ema.stateDict, ema.loadStateDict)) }
    for (prefix, component) in pipeline.context.checkpointables {
      parts.append(("state.\(prefix)", { component.checkpointState() }, { try component.restore($0) }))
    }
    return parts
  }

  /// Every tensor a checkpoint holds, under prefixed keys.
  func state() -> [String: Tensor] {
    var state: [String: Tensor] = [:]
    for part in parts { state.merge(prefixed(part.state(), part.prefix)) { a, _ in a } }
    return state
  }

  /// Restores the checkpoint of `step`.
  ///
  /// - Throws: ``DistillError`` when it is missing or does not fit this manifest's networks.
  func restore(step: Int) throws {
    let state = try store.read(step: step)
    do {
      for part in parts { try part.restore(tensors(state, under: part.prefix)) }
    } catch let error as DistillError {
      throw DistillError.malformed(path: store.path(step: step), detail: "does not fit this manifest's networks: \(error)")
    }
    last = step
  }

  /// Writes the checkpoint of `step` and keeps the newest `keep`.
  func write(step: Int) throws {
    try guardingWrites(at: step) { try writer(store, step, state(), keep) }
  }

  /// Runs `body`, a write of the run at `step`; a failure becomes
  /// ``RunFailure/writeFailed(_:step:lastCheckpoint:)`` saying which checkpoint is kept.
  func guardingWrites<T>(at step: Int, _ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as DistillError {
      throw RunFailure.writeFailed(error, step: step, lastCheckpoint: last)
    }
  }
}

/// The tensors of `tensors` whose keys start with `prefix` + `.`, under the rest of their key
/// (a checkpoint's `network.generator` part is the generator's state dict).
public func tensors(_ tensors: [String: Tensor], under prefix: String) -> [String: Tensor] {
  let head = prefix + "."
  var out: [String: Tensor] = [:]
  for (key, value) in tensors where key.hasPrefix(head) { out[String(key.dropFirst(head.count))] = value }
  return out
}

/// `tensors` with every key prefixed by `prefix` + `.`.
func prefixed(_ tensors: [String: Tensor], _ prefix: String) -> [String: Tensor] {
  Dictionary(uniqueKeysWithValues: tensors.map { (prefix + "." + $0.key, $0.value) })
}
