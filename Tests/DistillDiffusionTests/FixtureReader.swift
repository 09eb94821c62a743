import Foundation

@testable import DistillDiffusion

/// A minimal test-only reader for F32 tensors in a safetensors file: an 8-byte little-endian
/// header length, a JSON header, then the raw data.
struct FixtureFile {
  let tensors: [String: Tensor]
  let metadata: [String: String]

  /// Loads `Fixtures/<name>.safetensors` from the test bundle.
  init(named name: String) throws {
    guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures")
    else { throw DistillError.io(path: "Fixtures/\(name).safetensors", reason: "not in the test bundle") }
    let data = try Data(contentsOf: url)
    let headerLength = Int(data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
    let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
    let body = data.subdata(in: (8 + headerLength)..<data.count)
    var tensors: [String: Tensor] = [:]
    var metadata: [String: String] = [:]
    for (key, value) in header {
      let entry = value as! [String: Any]
      if key == "__metadata__" {
        metadata = entry.compactMapValues { $0 as? String }
        continue
      }
      precondition(entry["dtype"] as? String == "F32", "\(key): only F32 is supported")
      let shape = (entry["shape"] as! [NSNumber]).map(\.intValue)
      let offsets = (entry["data_offsets"] as! [NSNumber]).map(\.intValue)
      let bytes = body.subdata(in: offsets[0]..<offsets[1])
      let scalars = bytes.withUnsafeBytes { raw in
        (0..<(bytes.count / 4)).map {
          Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
        }
      }
      tensors[key] = Tensor(shape: shape, scalars: scalars)
    }
    self.tensors = tensors
    self.metadata = metadata
  }

  subscript(key: String) -> Tensor {
    guard let tensor = tensors[key] else { preconditionFailure("no tensor \(key) in the fixture") }
    return tensor
  }
}
