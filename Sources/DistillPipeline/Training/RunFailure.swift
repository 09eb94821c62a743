import DistillCore

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

  public var description: String { description(naming: RunFolder.Mode.described) }

  /// The message, with `naming` saying how a user asks for a run-folder mode (the CLI: a flag).
  public func description(naming: (RunFolder.Mode) -> String) -> String {
    func kept(_ step: Int?) -> String {
      step.map {
        "the last good checkpoint (step \($0)) is kept; fix the cause and run again with \(naming(.resume))"
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
        ? "interrupted after step \(step); checkpoint written; continue with \(naming(.resume))"
        : "interrupted after step \(step)"
    case .stoppedWithMainRank(let step):
      return "stopped at step \(step) because rank 0 failed (its message says why)"
    }
  }
}
