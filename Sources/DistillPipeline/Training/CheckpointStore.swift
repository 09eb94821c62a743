import DistillCore
import Foundation

/// The `checkpoints/` folder of a run: one folder per checkpoint, `step-00000500/` holding
/// `state.safetensors` (every network, optimizer state, EMA and component state, under
/// prefixed keys) with the step in its metadata.
///
/// A checkpoint is written into a hidden temporary folder, each file synced, then the folder
/// is renamed into place and the parent synced: a crash or a full disk leaves either the
/// whole new checkpoint or none, and never touches the previous ones. Older checkpoints
/// beyond the newest `keep` are removed only after the new one is in place.
public struct CheckpointStore {
  public static let stateFileName = "state.safetensors"
  public static let format = "distillery-checkpoint"
  public let folder: String

  public init(folder: String) { self.folder = folder }

  static func name(step: Int) -> String { String(format: "step-%08d", step) }

  /// The steps of the complete checkpoints, ascending.
  public func steps() -> [Int] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    return names.compactMap { name -> Int? in
      guard name.hasPrefix("step-"), let step = Int(name.dropFirst(5)) else { return nil }
      let state = (folder as NSString).appendingPathComponent("\(name)/\(Self.stateFileName)")
      return FileManager.default.fileExists(atPath: state) ? step : nil
    }.sorted()
  }

  public func path(step: Int) -> String { (folder as NSString).appendingPathComponent(Self.name(step: step)) }

  /// Writes a checkpoint for `step` and keeps the newest `keep`.
  /// - Throws: ``DistillError/io(path:reason:)`` when writing fails (the partial folder is
  ///   removed, earlier checkpoints are untouched).
  public func write(step: Int, tensors: [String: Tensor], keep: Int) throws {
    let manager = FileManager.default
    let final = path(step: step)
    let temporary = (folder as NSString).appendingPathComponent(".\(Self.name(step: step)).partial")
    do {
      try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
      removeIncomplete()
      try manager.createDirectory(atPath: temporary, withIntermediateDirectories: true)
    } catch {
      throw DistillError.io(path: temporary, reason: "cannot create the checkpoint folder: \(error.localizedDescription)")
    }
    do {
      try SafetensorsFile.write(
        tensors, metadata: ["format": Self.format, "step": String(step)],
        to: (temporary as NSString).appendingPathComponent(Self.stateFileName))
      AtomicFileWriter.syncFolder(temporary)
      if manager.fileExists(atPath: final) { try manager.removeItem(atPath: final) }
      guard rename(temporary, final) == 0 else {
        throw DistillError.io(path: final, reason: "cannot rename the checkpoint into place: \(String(cString: strerror(errno)))")
      }
      AtomicFileWriter.syncFolder(folder)
    } catch {
      try? manager.removeItem(atPath: temporary)
      if let error = error as? DistillError { throw error }
      throw DistillError.io(path: final, reason: error.localizedDescription)
    }
    for old in steps().dropLast(keep) { try? manager.removeItem(atPath: path(step: old)) }
  }

  /// Removes what a write or a removal cut short by a crash leaves: hidden entries (a
  /// `.step-N.partial` folder, whole or not) and `step-N` folders without their state file
  /// (an old checkpoint whose removal was interrupted). Complete checkpoints are kept; a
  /// run folder has one writer at a time, so nothing here belongs to a live write.
  public func removeIncomplete() {
    for name in leftovers() {
      try? FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(name))
    }
  }

  /// The names ``removeIncomplete()`` removes, sorted.
  public func leftovers() -> [String] {
    let manager = FileManager.default
    return ((try? manager.contentsOfDirectory(atPath: folder)) ?? []).filter { name in
      let state = (folder as NSString).appendingPathComponent("\(name)/\(Self.stateFileName)")
      return name.hasPrefix(".") || (name.hasPrefix("step-") && !manager.fileExists(atPath: state))
    }.sorted()
  }

  /// Reads the checkpoint of `step`.
  public func read(step: Int) throws -> [String: Tensor] {
    let state = (path(step: step) as NSString).appendingPathComponent(Self.stateFileName)
    guard FileManager.default.fileExists(atPath: state) else {
      let existing = steps()
      throw DistillError.invalidValue(
        location: folder,
        expected: existing.isEmpty
          ? "a checkpoint (there is none)" : "the step of a checkpoint: \(existing.map(String.init).joined(separator: ", "))",
        found: "step \(step)")
    }
    let file = try SafetensorsFile.read(contentsOf: state)
    guard file.metadata["format"] == Self.format, file.metadata["step"] == String(step) else {
      throw DistillError.malformed(
        path: file.path, detail: "not a Distillery checkpoint of step \(step) (metadata \(file.metadata))")
    }
    return try file.tensors()
  }
}
