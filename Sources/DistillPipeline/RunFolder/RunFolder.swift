import DistillCore
import Foundation

/// The layout of a run folder and the rules for reusing one.
///
/// ```
/// runs/NAME/
///   manifest.json          the resolved manifest (every default filled in)
///   checkpoints/step-N/    the newest checkpoints (see CheckpointStore)
///   metrics.jsonl          one line per logged step
///   events/                TensorBoard event files
///   samples/step-N.png     sample grids (scatter plots for 2-D data)
///   report.html            curves and the latest grids
///   generator.safetensors  the final generator (EMA weights where configured)
///   generator.json         what the generator is, to load it again
///   denoiser/              for a denoiser generator: a teacher folder (denoiser.json + weights)
/// ```
public struct RunFolder {
  public let path: String

  public init(path: String) { self.path = path }

  public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
  public var manifestPath: String { file("manifest.json") }
  public var checkpoints: CheckpointStore { CheckpointStore(folder: file("checkpoints")) }
  public var metricsPath: String { file("metrics.jsonl") }
  public var eventsFolder: String { file("events") }
  public var samplesFolder: String { file("samples") }
  public var reportPath: String { file("report.html") }
  public var generatorWeightsPath: String { file("generator.safetensors") }
  public var generatorConfigPath: String { file("generator.json") }
  public var denoiserFolder: String { file("denoiser") }
  public var vaeFolder: String { file("vae") }

  /// The names a run writes; `--force` removes these and nothing else.
  static let ownedNames = [
    "manifest.json", "checkpoints", "metrics.jsonl", "events", "samples", "report.html", "generator.safetensors",
    "generator.json", "denoiser", "vae",
  ]

  /// The keys a resumed run may change: how long it trains and where it evaluates.
  static let resumableKeys: Set<String> = ["training.steps", "output", "evaluation", "training.checkpointEvery",
    "training.keepCheckpoints", "training.logEvery"]

  public enum Mode: Sendable {
    case fresh, resume, force

    /// How messages name a mode when no front end names it otherwise ("resume mode").
    public static func described(_ mode: Mode) -> String { "\(mode) mode" }
  }

  /// A folder refused for the mode a run was started in; the message names the mode that
  /// would proceed, as the front end asks for it (``description(naming:)``).
  public struct Refusal: Error, CustomStringConvertible {
    let message: @Sendable ((Mode) -> String) -> String

    public func description(naming: (Mode) -> String) -> String { withoutActuallyEscaping(naming) { message($0) } }
    public var description: String { description(naming: Mode.described) }
  }

  /// Makes the folder ready for a run of `manifest` and returns the checkpoint step to
  /// resume from (`nil` for a start from step 0).
  ///
  /// With `.resume`, a folder that holds this run's manifest but no complete checkpoint (the
  /// run was stopped or killed before its first one) starts again from step 0: what it wrote
  /// is replaced, as `.force` would, and the same run follows. Leftovers of a killed process
  /// (see ``removeLeftovers()``) are removed in every mode before anything is written.
  ///
  /// - Throws: bad input (exit 2): ``Refusal`` when the folder holds a run and the mode is
  ///   `.fresh`, when it holds files that are not a run's under `.force`, or when `.resume`
  ///   meets a finished run without checkpoints or a damaged newest checkpoint;
  ///   ``DistillError/invalidValue(location:expected:found:)`` when `.resume` meets a folder
  ///   without a run or a different manifest (naming the first differing key), or the
  ///   folder holds files that are not a run's.
  public func prepare(for manifest: JSONValue, mode: Mode) throws -> Int? {
    let manager = FileManager.default
    var isDirectory: ObjCBool = false
    let exists = manager.fileExists(atPath: path, isDirectory: &isDirectory)
    if exists && !isDirectory.boolValue {
      throw DistillError.invalidValue(location: path, expected: "a folder for the run", found: "a file")
    }
    let contents = exists ? ((try? manager.contentsOfDirectory(atPath: path)) ?? []) : []
    let holdsRun = manager.fileExists(atPath: manifestPath)
    let foreign = contents.filter { !Self.ownedNames.contains($0) && !$0.hasPrefix(".") }
    switch mode {
    case .resume:
      guard holdsRun else {
        throw DistillError.invalidValue(
          location: path, expected: "a run folder to resume (with manifest.json and checkpoints)",
          found: contents.isEmpty ? "nothing" : "no manifest.json")
      }
      let saved = try JSONValue.parse(
        manager.contents(atPath: manifestPath) ?? Data(), source: manifestPath)
      if let difference = Self.firstDifference(saved, manifest, path: "") {
        throw DistillError.invalidValue(
          location: "\(manifestPath): \(difference)",
          expected: "the same manifest as the run being resumed (only training.steps, evaluation and checkpoint settings may change)",
          found: "a different value")
      }
      removeLeftovers()
      let steps = checkpoints.steps()
      if let step = steps.last {
        try checkReadable(step: step, previous: steps.dropLast().last)
        return step
      }
      // Nothing after step 0 would be lost by starting again, unless the run had finished
      // and its checkpoints were removed since: that is refused rather than retrained.
      if manager.fileExists(atPath: generatorWeightsPath) {
        let folder = checkpoints.folder
        throw Refusal { name in
          "\(folder): expected a checkpoint to resume from (the run finished and has no checkpoints left; pass \(name(.force)) to train it again), found none"
        }
      }
      // manifest.json stays until its replacement is renamed over it, so a kill in between
      // still leaves a folder that --resume recognises.
      for name in Self.ownedNames where name != "manifest.json" { try? manager.removeItem(atPath: file(name)) }
    case .fresh:
      if holdsRun {
        let step = checkpoints.steps().last.map { " (checkpoint at step \($0))" } ?? ""
        let path = path
        throw Refusal { name in
          "\(path): expected an empty or new folder; pass \(name(.resume)) to continue the run there or \(name(.force)) to replace it, found a run\(step)"
        }
      }
      if !foreign.isEmpty {
        throw DistillError.invalidValue(
          location: path, expected: "an empty or new folder for the run",
          found: "\(contents.count) entries that are not a run's (\(foreign.prefix(3).joined(separator: ", ")))")
      }
    case .force:
      if !foreign.isEmpty {
        let (path, files) = (path, foreign.prefix(3).joined(separator: ", "))
        throw Refusal { name in
          "\(path): expected a folder holding only a run (\(name(.force)) replaces a run, nothing else), found other files (\(files))"
        }
      }
      for name in Self.ownedNames { try? manager.removeItem(atPath: file(name)) }
    }
    removeLeftovers()
    do {
      try manager.createDirectory(atPath: path, withIntermediateDirectories: true)
      try manager.createDirectory(atPath: samplesFolder, withIntermediateDirectories: true)
    } catch {
      throw DistillError.io(path: path, reason: "cannot create the run folder: \(error.localizedDescription)")
    }
    try AtomicFileWriter.write(Array((manifest.text() + "\n").utf8), to: manifestPath)
    return nil
  }

  /// Checks that the checkpoint a resume would load has a valid safetensors header (cheap: the
  /// data is not read), so that a damaged one is named with what to do about it.
  func checkReadable(step: Int, previous: Int?) throws {
    let folder = checkpoints.path(step: step)
    do {
      _ = try SafetensorsFile.read(contentsOf: (folder as NSString).appendingPathComponent(CheckpointStore.stateFileName))
    } catch let error as DistillError {
      let reason = "\(error)"
      throw Refusal { name in
        let remedy = previous.map { "remove \(folder) to resume from step \($0)" } ?? "pass \(name(.force)) to start the run again"
        return "\(folder): the newest checkpoint does not read back (\(reason)); \(remedy)"
      }
    }
  }

  /// Removes what a killed process leaves behind, so that crashes do not pile up files: the
  /// temporary files of atomic writes (`.<name>.tmp-<pid>-<random>`) of the run's own files,
  /// hidden entries in the folders a run owns (`samples/`, `denoiser/`, `vae/`, `checkpoints/`: a
  /// checkpoint's `.step-N.partial` folder), and checkpoint folders without their state
  /// file (a removal of an old checkpoint cut short). Complete checkpoints and anything that
  /// is not the run's are never touched. Only one process may run in a folder at a time, so
  /// none of these can belong to a live writer.
  public func removeLeftovers() {
    let manager = FileManager.default
    let root = (try? manager.contentsOfDirectory(atPath: path)) ?? []
    for name in root where Self.ownedNames.contains(where: { name.hasPrefix(".\($0).tmp-") }) {
      try? manager.removeItem(atPath: file(name))
    }
    for owned in [samplesFolder, denoiserFolder, vaeFolder] {
      for name in (try? manager.contentsOfDirectory(atPath: owned)) ?? [] where name.hasPrefix(".") {
        try? manager.removeItem(atPath: (owned as NSString).appendingPathComponent(name))
      }
    }
    checkpoints.removeIncomplete()
  }

  /// The dotted path of the first value that differs, ignoring ``resumableKeys``.
  static func firstDifference(_ a: JSONValue, _ b: JSONValue, path: String) -> String? {
    if resumableKeys.contains(path) { return nil }
    switch (a, b) {
    case (.object(let x), .object(let y)):
      for key in Set(x.keys).union(y.keys).sorted() {
        let child = path.isEmpty ? key : "\(path).\(key)"
        if let found = firstDifference(x[key] ?? .null, y[key] ?? .null, path: child) { return found }
      }
      return nil
    case (.array(let x), .array(let y)):
      if x.count != y.count { return path }
      for (index, (u, v)) in zip(x, y).enumerated() {
        if let found = firstDifference(u, v, path: "\(path)[\(index)]") { return found }
      }
      return nil
    default:
      return a == b ? nil : (path.isEmpty ? "the manifest" : path)
    }
  }
}
