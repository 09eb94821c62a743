import DistillNN
import Foundation
import ImageIO

/// LPIPS distances between the pairs of two inputs, for `pipeline lpips`.
enum LPIPSComparison {
  /// The distance of each pair `(a[i], b[i])`, in order.
  ///
  /// - Parameters:
  ///   - network: the trunk.
  ///   - weightsPath: a safetensors state dict in the `lpips` package's names (docs/lpips.md).
  ///   - pathA, pathB: each a PNG or JPEG image (one pair, mapped from [0, 1] to [-1, 1]) or a
  ///     `.safetensors` batch `[N, 3, H, W]` in [-1, 1].
  ///   - keyA, keyB: the tensor to read from a safetensors input; `nil` reads the first tensor
  ///     stored in the file.
  /// - Throws: ``DistillError`` naming the file, key or flag when an input is bad: a missing or
  ///   unreadable file, weights of another network, shapes that differ or
  ///   do not fit, values outside [-1, 1].
  static func distances(
    network net: LPIPS.Network, weightsPath: String, pathA: String, pathB: String, keyA: String? = nil, keyB: String? = nil
  ) throws -> [Float] {
    let a = try batch(path: pathA, key: keyA)
    let b = try batch(path: pathB, key: keyB)
    guard a.shape == b.shape else {
      throw DistillError.shapeMismatch(
        operation: "lpips", detail: "\(pathA) holds \(a.shape) and \(pathB) holds \(b.shape); the pairs need one shape")
    }
    let side = min(a.shape[2], a.shape[3])
    guard side >= net.minimumSide else {
      throw DistillError.invalidValue(
        location: pathA, expected: "images of at least \(net.minimumSide)x\(net.minimumSide) for LPIPS \(net.rawValue)",
        found: "\(a.shape[2])x\(a.shape[3])")
    }
    let lpips = try LPIPS.load(network: net, weightsPath: weightsPath)
    // Chunks bound the memory of the feature maps for large batches.
    let chunk = 16
    var result: [Float] = []
    for start in stride(from: 0, to: a.shape[0], by: chunk) {
      let range = start..<min(a.shape[0], start + chunk)
      result += withoutGradients { lpips(a.sliced(axis: 0, range), b.sliced(axis: 0, range)) }.scalars
    }
    return result
  }

  /// An input as `[N, 3, H, W]` in [-1, 1]: a `.safetensors` batch or one PNG/JPEG image.
  static func batch(path: String, key: String?) throws -> Tensor {
    guard FileManager.default.fileExists(atPath: path) else {
      throw DistillError.io(path: path, reason: "no such file")
    }
    if path.lowercased().hasSuffix(".safetensors") {
      return try safetensorsBatch(path: path, key: key)
    }
    let image = ImageFile.toSignedUnit(try ImageFile.readRGB(path))
    return image.reshaped([1] + image.shape)
  }

  private static func safetensorsBatch(path: String, key: String?) throws -> Tensor {
    let file = try SafetensorsFile.read(contentsOf: path)
    let name: String
    if let key {
      guard file.info(key) != nil else {
        throw DistillError.invalidValue(
          location: "\(path): --key", expected: "one of the file's tensors (\(file.keys.joined(separator: ", ")))",
          found: "'\(key)'")
      }
      name = key
    } else {
      guard let first = file.entries.min(by: { $0.value.dataOffsets.lowerBound < $1.value.dataOffsets.lowerBound })
      else { throw DistillError.invalidValue(location: path, expected: "at least one tensor", found: "none") }
      name = first.key
    }
    let tensor = try file.tensor(name)
    guard tensor.rank == 4, tensor.shape[1] == 3, tensor.count > 0 else {
      throw DistillError.invalidValue(
        location: "\(path): tensor '\(name)'", expected: "a batch [N, 3, H, W]", found: "shape \(tensor.shape)")
    }
    // A small slack for values rounded on their way through float16 or an image codec.
    if let bad = tensor.scalars.firstIndex(where: { !($0 >= -1.001 && $0 <= 1.001) }) {
      throw DistillError.invalidValue(
        location: "\(path): tensor '\(name)'", expected: "values in [-1, 1]",
        found: "\(tensor.scalars[bad]) at flat index \(bad)")
    }
    return tensor
  }
}
