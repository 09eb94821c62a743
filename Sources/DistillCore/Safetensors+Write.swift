#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

extension SafetensorsFile {
  /// Writes `tensors` to `path` in the safetensors format, all stored as `dtype`.
  ///
  /// The output matches what the Python `safetensors` library writes for the same tensors
  /// (tensors in sorted key order, compact JSON header with `__metadata__` first, header
  /// padded with spaces to a multiple of 8 bytes). F16 and BF16 round to nearest even;
  /// F16 overflows to ±inf. The file is written through ``AtomicFileWriter``, so a failure
  /// never leaves a partial file at `path`.
  ///
  /// - Throws: `DistillError.invalidValue` for a dtype other than F32/F16/BF16 or a tensor
  ///   named `__metadata__`; `DistillError.io` when the file cannot be written.
  public static func write(
    _ tensors: [String: Tensor], metadata: [String: String] = [:], dtype: SafetensorsDType = .F32,
    to path: String
  ) throws {
    guard dtype.isWritable else {
      throw DistillError.invalidValue(location: path, expected: "dtype F32, F16 or BF16", found: dtype.rawValue)
    }
    guard tensors["__metadata__"] == nil else {
      throw DistillError.invalidValue(
        location: path, expected: "tensor names other than the reserved \"__metadata__\"", found: "__metadata__")
    }
    let names = tensors.keys.sorted()
    let header = headerBytes(tensors, names: names, metadata: metadata, dtype: dtype)

    let file = try AtomicFileWriter(path: path)
    try header.withUnsafeBytes { try file.write($0) }
    let width = dtype.bitWidth / 8
    let chunkElements = 1 << 16
    var chunk = [UInt8](repeating: 0, count: chunkElements * width)
    for name in names {
      try tensors[name]!.withUnsafeBufferPointer { values in
        var start = 0
        while start < values.count {
          let end = min(start + chunkElements, values.count)
          chunk.withUnsafeMutableBytes { out in
            for i in start..<end {
              let offset = (i - start) * width
              switch dtype {
              case .F16: out.storeBytes(of: halfBitsFromFloat(values[i]).littleEndian, toByteOffset: offset, as: UInt16.self)
              case .BF16:
                out.storeBytes(of: bfloat16BitsFromFloat(values[i]).littleEndian, toByteOffset: offset, as: UInt16.self)
              default: out.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: offset, as: UInt32.self)
              }
            }
          }
          let byteCount = (end - start) * width
          try chunk.withUnsafeBytes { try file.write(UnsafeRawBufferPointer(rebasing: $0[0..<byteCount])) }
          start = end
        }
      }
    }
    try file.commit()
  }

  /// The 8-byte length and the space-padded JSON header, as the reference writer lays them out.
  static func headerBytes(
    _ tensors: [String: Tensor], names: [String], metadata: [String: String], dtype: SafetensorsDType
  ) -> [UInt8] {
    var json = "{"
    var first = true
    func separator() {
      if !first { json += "," }
      first = false
    }
    if !metadata.isEmpty {
      separator()
      json += "\"__metadata__\":{"
      json += metadata.keys.sorted().map { "\(JSONValue.quoted($0)):\(JSONValue.quoted(metadata[$0]!))" }.joined(separator: ",")
      json += "}"
    }
    var offset = 0
    for name in names {
      let tensor = tensors[name]!
      let size = tensor.count * dtype.bitWidth / 8
      separator()
      json += "\(JSONValue.quoted(name)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":["
      json += tensor.shape.map(String.init).joined(separator: ",")
      json += "],\"data_offsets\":[\(offset),\(offset + size)]}"
      offset += size
    }
    json += "}"
    var bytes = Array(json.utf8)
    bytes += [UInt8](repeating: 0x20, count: (8 - bytes.count % 8) % 8)
    return Swift.withUnsafeBytes(of: UInt64(bytes.count).littleEndian, Array.init) + bytes
  }
}
