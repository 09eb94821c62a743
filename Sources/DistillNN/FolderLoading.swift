import DistillCore
import Foundation

/// The `config.json` of a model folder, or an error naming it as `what`'s config.
func readModelConfig(folder: String, of what: String) throws -> (path: String, data: Data) {
  let path = (folder as NSString).appendingPathComponent("config.json")
  guard let data = FileManager.default.contents(atPath: path) else {
    throw DistillError.io(path: path, reason: "cannot read \(what)'s config")
  }
  return (path, data)
}

/// A model read from a folder as its library saves it: `config.json` decoded by `decode`, the
/// model built from it, and the weights of `weightsFile` (keys mapped by `key`, `nil` to skip
/// one) loaded strictly, in eval mode.
///
/// - Throws: ``DistillError`` naming the file: a missing config or weights file, what `decode`
///   throws, weights that do not fit.
public func loadModelFolder<Config, Model: Module>(
  _ folder: String, of what: String, weightsFile: String, decode: (Data, String) throws -> Config,
  build: (Config, inout RandomGenerator) -> Model, key: (String) -> String? = { $0 }
) throws -> Model {
  let (configPath, data) = try readModelConfig(folder: folder, of: what)
  var rng = RandomGenerator(seed: 0)
  let model = build(try decode(data, configPath), &rng)
  let weightsPath = (folder as NSString).appendingPathComponent(weightsFile)
  let file = try SafetensorsFile.read(contentsOf: weightsPath)
  var tensors: [String: Tensor] = [:]
  for name in file.keys { if let mapped = key(name) { tensors[mapped] = try file.tensor(name) } }
  try model.loadCheckpoint(tensors, from: weightsPath)
  return model
}

extension Module {
  /// Loads `tensors` (a checkpoint's state dict, keys already mapped) strictly and sets eval
  /// mode; any missing, unexpected or mis-shaped tensor is an error naming `path`.
  func loadCheckpoint(_ tensors: [String: Tensor], from path: String) throws {
    do {
      try load(tensors, strict: true)
    } catch let error as DistillError {
      throw DistillError.malformed(path: path, detail: error.description)
    }
    eval()
  }
}

/// Writes a model folder as its library saves one: `config.json` (keys sorted) and
/// `stateDict` as float32 safetensors under `weightsFile`.
func writeModelFolder(_ folder: String, config: [String: JSONValue], weightsFile: String, stateDict: [String: Tensor])
  throws
{
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  let configPath = (folder as NSString).appendingPathComponent("config.json")
  try JSONEncoder.sortedPretty.encode(JSONValue.object(config)).write(to: URL(fileURLWithPath: configPath), options: .atomic)
  try SafetensorsFile.write(stateDict, metadata: ["format": "pt"], to: (folder as NSString).appendingPathComponent(weightsFile))
}
