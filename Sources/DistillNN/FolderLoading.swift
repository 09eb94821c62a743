import DistillCore
import Foundation

/// The `config.json` of a model folder, or an error naming it as `what`'s config.
public func readModelConfig(folder: String, of what: String) throws -> (path: String, data: Data) {
  let path = (folder as NSString).appendingPathComponent("config.json")
  guard let data = FileManager.default.contents(atPath: path) else {
    throw DistillError.io(path: path, reason: "cannot read \(what)'s config")
  }
  return (path, data)
}

extension Module {
  /// Loads `tensors` (a checkpoint's state dict, keys already mapped) strictly and sets eval
  /// mode; any missing, unexpected or mis-shaped tensor is an error naming `path`.
  public func loadCheckpoint(_ tensors: [String: Tensor], from path: String) throws {
    do {
      try load(tensors, strict: true)
    } catch let error as DistillError {
      throw DistillError.malformed(path: path, detail: error.description)
    }
    eval()
  }
}
