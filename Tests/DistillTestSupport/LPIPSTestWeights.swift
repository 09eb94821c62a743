import DistillCore
import Foundation

/// The full LPIPS state dict of an `lpips-<net>-randbackbone` fixture, written to a fresh
/// temporary safetensors file (the caller may remove it).
///
/// The fixture's `weights.safetensors` holds the scaling layer and the lin heads, and in its
/// metadata key "trunk" the [key, shape] list of the trunk, whose values follow the formula of
/// make_lpips_fixtures.py: for the trunk tensor at position p of the sorted keys, element i is
/// `(2h/2³² − 1)·s` with `h = ((i + 1 + 1000003p)·2654435761) mod 2³²`, `s = √(6/fan_in)` for a
/// conv weight and 0.05 for a bias, computed in Double and rounded once to Float, so it equals
/// what the package was given.
public func lpipsTestWeights(fixture weightsPath: String) throws -> String {
  let file = try SafetensorsFile.read(contentsOf: weightsPath)
  var tensors = try file.tensors()
  guard let listing = file.metadata["trunk"],
    case .array(let entries) = try JSONValue.parse(Data(listing.utf8), source: weightsPath)
  else { throw DistillError.malformed(path: weightsPath, detail: "no \"trunk\" listing in the metadata") }
  for (position, entry) in entries.enumerated() {
    guard case .array(let pair) = entry, pair.count == 2, case .string(let key) = pair[0],
      case .array(let dims) = pair[1]
    else { throw DistillError.malformed(path: weightsPath, detail: "bad trunk entry \(position)") }
    let shape = dims.map { value -> Int in if case .number(let n) = value { return Int(n) } else { return 0 } }
    let count = shape.reduce(1, *)
    let scale = shape.count == 4 ? (6.0 / Double(count / shape[0])).squareRoot() : 0.05
    let offset = UInt64(1 + 1_000_003 * position)
    tensors[key] = Tensor(shape: shape) { out in
      for i in 0..<count {
        let h = ((UInt64(i) &+ offset) &* 2_654_435_761) & 0xFFFF_FFFF
        out[i] = Float((2 * (Double(h) / 4_294_967_296.0) - 1) * scale)
      }
    }
  }
  let path = FileManager.default.temporaryDirectory
    .appendingPathComponent("lpips-test-\(UUID().uuidString).safetensors").path
  try SafetensorsFile.write(tensors, to: path)
  return path
}
