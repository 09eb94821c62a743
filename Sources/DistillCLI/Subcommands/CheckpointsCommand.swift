import ArgumentParser
import DistillCore
import DistillPipeline
import Foundation

struct CheckpointsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "checkpoints",
    abstract: "List a run's checkpoints and check that each one reads back whole.",
    discussion: """
      Prints one line per complete checkpoint ("step-00000500 ok 24 tensors 1234567 bytes", or "... bad"), \
      reading each as --resume would (header, offsets, metadata, every tensor), then one line per leftover \
      of an interrupted write or removal ("leftover .step-00000600.partial"), which the next run in the \
      folder removes. Exit code 2, with the first problem, when the folder is not a run or a checkpoint \
      does not read back.
      """)

  @Argument(help: "The run folder.")
  var folder: String

  func run() throws {
    try runReportingErrors {
      let folder = RunFolder(path: self.folder)
      guard FileManager.default.fileExists(atPath: folder.manifestPath) else {
        throw DistillError.io(path: folder.manifestPath, reason: "not a run folder (no manifest.json)")
      }
      let store = folder.checkpoints
      var firstError: DistillError?
      for step in store.steps() {
        let name = (store.path(step: step) as NSString).lastPathComponent
        do {
          let tensors = try store.read(step: step)
          let file = (store.path(step: step) as NSString).appendingPathComponent(CheckpointStore.stateFileName)
          let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? nil
          print("\(name) ok \(tensors.count) tensors \(size.map(String.init) ?? "?") bytes")
        } catch let error as DistillError {
          print("\(name) bad")
          firstError = firstError ?? error
        }
      }
      for name in store.leftovers() { print("leftover \(name)") }
      if let firstError { throw firstError }
    }
  }
}
