#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// A read-only private memory mapping of a whole file, unmapped on deinit.
///
/// `@unchecked Sendable`: the mapping is immutable (`PROT_READ`) for its whole life.
final class FileMapping: @unchecked Sendable {
  let base: UnsafeRawPointer
  let count: Int

  /// Maps `path`; throws `.io` when it cannot be opened, is not a regular file, or cannot be mapped.
  init(path: String) throws {
    func ioError(_ what: String) -> DistillError {
      .io(path: path, reason: "\(what): \(String(cString: strerror(errno)))")
    }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ioError("cannot open") }
    defer { close(fd) }
    var status = stat()
    guard fstat(fd, &status) == 0 else { throw ioError("cannot stat") }
    guard (status.st_mode & S_IFMT) == S_IFREG else {
      throw DistillError.io(path: path, reason: "not a regular file")
    }
    let size = Int(status.st_size)
    if size == 0 {
      // mmap rejects length 0; an empty file is still a (malformed) safetensors file.
      base = UnsafeRawPointer(bitPattern: 1)!  // never dereferenced: count is 0
      count = 0
      return
    }
    guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
      throw ioError("cannot mmap \(size) bytes")
    }
    base = UnsafeRawPointer(mapped)
    count = size
  }

  var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: count == 0 ? nil : base, count: count) }

  deinit {
    if count > 0 { munmap(UnsafeMutableRawPointer(mutating: base), count) }
  }
}

extension SafetensorsFile {
  /// Opens, maps and validates the safetensors file at `path`.
  ///
  /// Throws `DistillError.io` when the file cannot be opened or mapped, and
  /// `DistillError.malformed` naming the problem when its content breaks any rule of the
  /// format (see `Safetensors+Header.swift`).
  public static func read(contentsOf path: String) throws -> SafetensorsFile {
    let mapping = try FileMapping(path: path)
    let header = try SafetensorsHeader.parse(fileHead: mapping.bytes, fileLength: mapping.count, path: path)
    return SafetensorsFile(
      path: path, metadata: header.metadata, entries: header.entries, mapping: mapping,
      dataStart: 8 + header.headerLength)
  }

  /// The raw little-endian bytes of tensor `key`, valid while this value lives.
  public func withUnsafeBytes<R>(of key: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    guard let info = entries[key] else { throw missing(key) }
    let range = (dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound)
    return try withExtendedLifetime(mapping) {
      try body(UnsafeRawBufferPointer(rebasing: mapping.bytes[range]))
    }
  }

  /// Tensor `key` converted to `Float` (see ``SafetensorsDType/isConvertibleToFloat``).
  public func tensor(_ key: String) throws -> Tensor {
    guard let info = entries[key] else { throw missing(key) }
    guard info.dtype.isConvertibleToFloat else {
      throw DistillError.invalidValue(
        location: "\(path): tensor '\(key)'", expected: "a dtype convertible to Float32",
        found: info.dtype.rawValue)
    }
    return try withUnsafeBytes(of: key) { raw in
      Tensor(shape: info.shape) { out in Self.convert(raw, dtype: info.dtype, into: out) }
    }
  }

  /// Every tensor, converted to `Float`.
  public func tensors() throws -> [String: Tensor] {
    var result: [String: Tensor] = [:]
    result.reserveCapacity(entries.count)
    for key in entries.keys { result[key] = try tensor(key) }
    return result
  }

  private func missing(_ key: String) -> DistillError {
    .invalidValue(location: path, expected: "the name of a tensor in the file", found: "'\(key)'")
  }

  /// Converts little-endian `raw` elements of `dtype` to `Float`; reads are unaligned-safe.
  static func convert(_ raw: UnsafeRawBufferPointer, dtype: SafetensorsDType, into out: UnsafeMutableBufferPointer<Float>) {
    @inline(__always) func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
      T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
    }
    let n = out.count
    switch dtype {
    case .F32: for i in 0..<n { out[i] = Float(bitPattern: load(UInt32.self, i)) }
    case .F64: for i in 0..<n { out[i] = Float(Double(bitPattern: load(UInt64.self, i))) }
    case .F16: for i in 0..<n { out[i] = floatFromHalfBits(load(UInt16.self, i)) }
    case .BF16: for i in 0..<n { out[i] = floatFromBFloat16Bits(load(UInt16.self, i)) }
    case .I64: for i in 0..<n { out[i] = Float(load(Int64.self, i)) }
    case .U64: for i in 0..<n { out[i] = Float(load(UInt64.self, i)) }
    case .I32: for i in 0..<n { out[i] = Float(load(Int32.self, i)) }
    case .U32: for i in 0..<n { out[i] = Float(load(UInt32.self, i)) }
    case .I16: for i in 0..<n { out[i] = Float(load(Int16.self, i)) }
    case .U16: for i in 0..<n { out[i] = Float(load(UInt16.self, i)) }
    case .I8: for i in 0..<n { out[i] = Float(Int8(bitPattern: raw[i])) }
    case .U8: for i in 0..<n { out[i] = Float(raw[i]) }
    case .BOOL: for i in 0..<n { out[i] = raw[i] == 0 ? 0 : 1 }
    default: preconditionFailure("\(dtype) is not convertible; checked by the caller")
    }
  }
}
