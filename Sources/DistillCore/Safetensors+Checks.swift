#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Checks on a safetensors file's content that loaders run before trusting it: finiteness of
/// the weights (a NaN or infinity in a teacher poisons every step of a run that uses it) and
/// whether a file can hold a model at all (checked before the model is allocated).

/// A NaN or infinite element found by ``SafetensorsFile/firstNonFinite(among:)``.
public struct NonFiniteElement: Sendable, Equatable {
  /// The tensor's name in the file.
  public let key: String
  /// The element's flat (row-major) index.
  public let index: Int
  /// The element as ``SafetensorsFile/tensor(_:)`` reads it: NaN, +inf or -inf.
  public let value: Float
}

extension SafetensorsFile {
  /// The first element, in sorted key order, that reads as NaN or ±infinity, or `nil`.
  ///
  /// Scans the mapped bytes without converting whole tensors. Values are judged as
  /// ``tensor(_:)`` converts them, so an F64 beyond `Float`'s range counts as infinite.
  /// Dtypes not convertible to `Float` are skipped; integer dtypes are always finite.
  /// - Parameter keys: the tensors to scan (default: all).
  public func firstNonFinite(among keys: [String]? = nil) throws -> NonFiniteElement? {
    for key in (keys ?? self.keys).sorted() {
      guard let info = entries[key] else { throw DistillError.invalidValue(location: path, expected: "the name of a tensor in the file", found: "'\(key)'") }
      let found: (Int, Float)? = try withUnsafeBytes(of: key) { raw in
        Self.firstNonFinite(raw, dtype: info.dtype, count: info.elementCount)
      }
      if let (index, value) = found { return NonFiniteElement(key: key, index: index, value: value) }
    }
    return nil
  }

  /// Throws ``DistillError/malformed(path:detail:)`` naming the first tensor that holds a NaN
  /// or an infinity (see ``firstNonFinite(among:)``).
  public func requireFinite(_ keys: [String]? = nil) throws {
    guard let bad = try firstNonFinite(among: keys) else { return }
    throw DistillError.malformed(
      path: path,
      detail: "tensor '\(bad.key)' holds \(bad.value) at element \(bad.index); weights must be finite "
        + "(a NaN or infinity in a teacher poisons every step that uses it)")
  }

  static func firstNonFinite(_ raw: UnsafeRawBufferPointer, dtype: SafetensorsDType, count: Int) -> (Int, Float)? {
    @inline(__always) func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
      T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
    }
    switch dtype {
    case .F32:
      // All-ones exponent is NaN or infinity.
      for i in 0..<count where load(UInt32.self, i) & 0x7F80_0000 == 0x7F80_0000 {
        return (i, Float(bitPattern: load(UInt32.self, i)))
      }
    case .F16:
      for i in 0..<count where load(UInt16.self, i) & 0x7C00 == 0x7C00 {
        return (i, floatFromHalfBits(load(UInt16.self, i)))
      }
    case .BF16:
      for i in 0..<count where load(UInt16.self, i) & 0x7F80 == 0x7F80 {
        return (i, floatFromBFloat16Bits(load(UInt16.self, i)))
      }
    case .F64:
      for i in 0..<count {
        let value = Float(Double(bitPattern: load(UInt64.self, i)))
        if !value.isFinite { return (i, value) }
      }
    default:
      break
    }
    return nil
  }

  /// Throws unless the file at `path` is large enough to hold `parameterCount` values.
  ///
  /// A loader calls this before allocating a model whose size comes from a config file, so
  /// that a config naming an absurd size (with a small weights file beside it) is refused
  /// rather than allocating it. Every dtype a tensor can be loaded from takes at least one
  /// byte per value, so a smaller file cannot hold the model's weights.
  public static func requireRoom(forParameters parameterCount: Int, path: String, model: String) throws {
    var status = stat()
    guard stat(path, &status) == 0 else {
      throw DistillError.io(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
    }
    let size = Int(status.st_size)
    guard parameterCount <= size else {
      throw DistillError.malformed(
        path: path,
        detail: "the file is \(size) bytes, too small for the \(parameterCount) parameters of \(model); "
          + "the config and the weights do not belong together")
    }
  }
}
