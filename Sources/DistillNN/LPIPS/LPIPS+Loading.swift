import DistillCore

extension LPIPS {
  /// LPIPS with the weights of the safetensors file at `weightsPath`, a state dict in the
  /// `lpips` package's names (see docs/lpips.md), checked strictly: every key of the network
  /// must be there with its shape, and no other key. Any float dtype is accepted.
  ///
  /// - Throws: ``DistillError`` naming the file and each offending key; when the keys are
  ///   those of another trunk, the message says which.
  public static func load(network: Network, weightsPath: String) throws -> LPIPS {
    let file = try SafetensorsFile.read(contentsOf: weightsPath)
    let problems = mismatches(network: network, file: file)
    guard problems.isEmpty else {
      var detail = "not the weights of LPIPS \(network.rawValue): "
        + DistillError.stateDictMismatch(problems: problems).description
      if let other = Network.allCases.first(where: { $0 != network && mismatches(network: $0, file: file).isEmpty }) {
        detail += "\n  these are the weights of LPIPS \(other.rawValue)"
      }
      throw DistillError.malformed(path: weightsPath, detail: detail)
    }
    let model = LPIPS(network: network)
    var tensors: [String: Tensor] = [:]
    for key in file.keys { tensors[key] = try file.tensor(key) }
    try model.load(tensors, strict: true)
    return model
  }

  /// What keeps `file` from loading into `network`, from its header alone.
  static func mismatches(network: Network, file: SafetensorsFile) -> [String] {
    let expected = network.parameterShapes
    let names = Set(expected.map(\.key))
    var problems: [String] = []
    for (key, shape) in expected {
      guard let info = file.info(key) else {
        problems.append("'\(key)': missing from the weights")
        continue
      }
      if info.shape != shape {
        problems.append("'\(key)': shape \(info.shape) in the weights, LPIPS \(network.rawValue) expects \(shape)")
      } else if !info.dtype.isConvertibleToFloat {
        problems.append("'\(key)': dtype \(info.dtype.rawValue), expected a float dtype")
      }
    }
    for key in file.keys where !names.contains(key) {
      let hint = key.hasPrefix("lins.") ? " (the package's duplicate of lin*; drop lins.* when converting)" : ""
      problems.append("'\(key)': unexpected key, LPIPS \(network.rawValue) has no such parameter\(hint)")
    }
    return problems
  }
}
