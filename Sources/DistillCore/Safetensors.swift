/// Reading and writing the [safetensors](https://github.com/huggingface/safetensors) format.
///
/// Layout: 8 bytes little-endian `UInt64` header length `N`, then `N` bytes of a UTF-8 JSON
/// object (optionally padded with whitespace), then the data buffer. Each header entry other
/// than `__metadata__` is `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}`
/// with offsets relative to the start of the data buffer.
///
/// The files are split by concern:
/// - `Safetensors.swift` (this file): the public types, dtype table and half-float conversions.
/// - `Safetensors+Header.swift`: the header validation rules.
/// - `Safetensors+JSON.swift`: the strict JSON parser the header is read with.
/// - `Safetensors+Read.swift`: the memory mapping and conversion to `Tensor`.
/// - `Safetensors+Write.swift`: the atomic writer.

/// An element type named in a safetensors header.
///
/// All the dtypes the reference Rust reader accepts are listed, so any valid file can be
/// opened and inspected. ``isConvertibleToFloat`` says which ones ``SafetensorsFile/tensor(_:)``
/// can convert to `Float`; ``isWritable`` which ones ``SafetensorsFile/write(_:metadata:dtype:to:)``
/// can produce.
public enum SafetensorsDType: String, Sendable, CaseIterable, Hashable {
  case BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, C64
  case F4, F6_E2M3, F6_E3M2, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ

  /// Bits per element (sub-byte types are 4 or 6 bits; a tensor of them must fill whole bytes).
  public var bitWidth: Int {
    switch self {
    case .F4: return 4
    case .F6_E2M3, .F6_E3M2: return 6
    case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3, .F8_E8M0, .F8_E4M3FNUZ, .F8_E5M2FNUZ: return 8
    case .I16, .U16, .F16, .BF16: return 16
    case .I32, .U32, .F32: return 32
    case .F64, .I64, .U64, .C64: return 64
    }
  }

  /// Whether ``SafetensorsFile/tensor(_:)`` converts this dtype to `Float`.
  ///
  /// Integers wider than 24 bits (I32, U32, I64, U64) convert exactly only up to 2^24 in
  /// magnitude, F64 rounds to the nearest `Float`, BOOL reads as 0 or 1.
  public var isConvertibleToFloat: Bool {
    switch self {
    case .F32, .F16, .BF16, .F64, .I64, .I32, .U8, .BOOL, .I8, .I16, .U16, .U32, .U64: return true
    default: return false
    }
  }

  /// Whether the writer can store tensors in this dtype (F32, F16, BF16).
  public var isWritable: Bool { self == .F32 || self == .F16 || self == .BF16 }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
  public let dtype: SafetensorsDType
  public let shape: [Int]
  /// Byte range within the data buffer (which starts at file offset `8 + N`).
  public let dataOffsets: Range<Int>
  /// Number of elements, `shape.reduce(1, *)` (validated not to overflow).
  public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file opened for reading.
///
/// ``read(contentsOf:)`` maps the file (`mmap`, read-only, private) and validates the whole
/// header; tensors are converted to `Float` lazily by ``tensor(_:)``, so opening a large
/// checkpoint to look at its keys is cheap. The mapping stays alive while any copy of this
/// value lives and is unmapped when the last one goes away. As with every mmap-based reader,
/// truncating the file on disk while it is mapped can make later reads fault; replacing it by
/// rename (as ``write(_:metadata:dtype:to:)`` does) is safe.
public struct SafetensorsFile: Sendable {
  /// The path the file was opened from, used in error messages.
  public let path: String
  /// The `__metadata__` map (empty when absent).
  public let metadata: [String: String]
  /// Every tensor entry by name.
  public let entries: [String: SafetensorsTensorInfo]
  let mapping: FileMapping
  /// File offset of the data buffer (`8 + N`).
  let dataStart: Int

  /// Tensor names, sorted.
  public var keys: [String] { entries.keys.sorted() }

  /// The dtype, shape and offsets of tensor `key`, or `nil` if there is none.
  public func info(_ key: String) -> SafetensorsTensorInfo? { entries[key] }
}

// MARK: Half-precision conversions (bit-exact; no dependence on `Float16`, which some platforms lack)

/// IEEE 754 binary16 bits to `Float`; exact for every value including subnormals, ±inf and NaN.
@inline(__always)
func floatFromHalfBits(_ h: UInt16) -> Float {
  let sign = UInt32(h & 0x8000) << 16
  let exponent = Int(h >> 10) & 0x1F
  let mantissa = UInt32(h & 0x03FF)
  if exponent == 0x1F {  // inf / NaN: keep the payload
    return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
  }
  if exponent == 0 {  // zero / subnormal: mantissa * 2^-24, exact in Float
    let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000)  // 2^-24
    return Float(bitPattern: sign | magnitude.bitPattern)
  }
  return Float(bitPattern: sign | (UInt32(exponent + 112) << 23) | (mantissa << 13))
}

/// `Float` to binary16 bits, rounding to nearest even; overflow gives ±inf, NaN stays NaN
/// (sign and top payload bits kept, quiet bit set — what x86 F16C and PyTorch produce).
@inline(__always)
func halfBitsFromFloat(_ f: Float) -> UInt16 {
  let bits = f.bitPattern
  let sign = UInt16((bits >> 16) & 0x8000)
  let exponent = Int((bits >> 23) & 0xFF)
  let mantissa = bits & 0x007F_FFFF
  if exponent == 0xFF {
    return mantissa == 0 ? sign | 0x7C00 : sign | 0x7E00 | UInt16(truncatingIfNeeded: mantissa >> 13)
  }
  let halfExponent = exponent - 112  // rebias 127 -> 15
  if halfExponent >= 0x1F { return sign | 0x7C00 }  // overflow
  if halfExponent <= 0 {
    // Subnormal half (or zero): shift the full significand right and round to nearest even.
    if halfExponent < -10 { return sign }  // below half the smallest subnormal
    let significand = mantissa | 0x0080_0000
    let shift = UInt32(14 - halfExponent)
    var result = significand >> shift
    let remainder = significand & ((1 << shift) - 1)
    let halfway = UInt32(1) << (shift - 1)
    if remainder > halfway || (remainder == halfway && (result & 1) == 1) { result += 1 }
    return sign | UInt16(result)
  }
  var result = UInt32(halfExponent) << 10 | (mantissa >> 13)
  let remainder = mantissa & 0x1FFF
  if remainder > 0x1000 || (remainder == 0x1000 && (result & 1) == 1) {
    result += 1  // may carry into the exponent, up to inf: correct
  }
  return sign | UInt16(result)
}

/// bfloat16 bits to `Float`: the upper 16 bits of a binary32.
@inline(__always)
func floatFromBFloat16Bits(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

/// `Float` to bfloat16 bits, rounding to nearest even; NaN becomes the quiet NaN `0x7FC0`
/// with the input's sign (rounding could otherwise turn a NaN into inf).
@inline(__always)
func bfloat16BitsFromFloat(_ f: Float) -> UInt16 {
  let bits = f.bitPattern
  if f.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000) | 0x7FC0 }
  let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
  return UInt16(truncatingIfNeeded: rounded >> 16)
}
