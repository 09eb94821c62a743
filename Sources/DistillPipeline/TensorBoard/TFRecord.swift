/// The byte-level pieces of a TensorBoard event file: CRC-32C, TFRecord framing and a
/// minimal protobuf encoder. Nothing here depends on a protobuf library.

// MARK: CRC-32C

/// CRC-32C (Castagnoli), the checksum TFRecord files use.
///
/// Reflected polynomial `0x82F63B78`, initial value and final XOR `0xFFFFFFFF`, computed a
/// byte at a time through a 256-entry table. `checksum("123456789") == 0xE3069283`.
enum CRC32C {
  /// `table[b]` is the CRC register after shifting the byte `b` through it.
  static let table: [UInt32] = (0..<256).map { byte in
    var crc = UInt32(byte)
    for _ in 0..<8 {
      crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
    }
    return crc
  }

  /// The CRC-32C of `bytes`.
  static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
    let table = Self.table
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
      crc = table[Int(UInt8(truncatingIfNeeded: crc) ^ byte)] ^ (crc >> 8)
    }
    return ~crc
  }

  /// The CRC-32C of `bytes`, masked as TFRecord stores it:
  /// `((crc >> 15) | (crc << 17)) &+ 0xA282EAD8`. Masking keeps a CRC of data that itself
  /// holds CRCs from being trivially predictable.
  static func masked(_ bytes: some Sequence<UInt8>) -> UInt32 {
    mask(checksum(bytes))
  }

  /// Masks an already computed CRC (see ``masked(_:)``).
  static func mask(_ crc: UInt32) -> UInt32 {
    ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
  }
}

// MARK: TFRecord

/// TFRecord framing: each record is
///
///     uint64 length (little-endian)
///     uint32 masked CRC-32C of those 8 length bytes (little-endian)
///     length bytes of data
///     uint32 masked CRC-32C of the data (little-endian)
enum TFRecord {
  /// The bytes of one framed record holding `data`.
  static func frame(_ data: [UInt8]) -> [UInt8] {
    var record: [UInt8] = []
    record.reserveCapacity(data.count + 16)
    let length = littleEndianBytes(UInt64(data.count))
    record += length
    record += littleEndianBytes(CRC32C.masked(length))
    record += data
    record += littleEndianBytes(CRC32C.masked(data))
    return record
  }

  /// The little-endian bytes of a fixed-width integer.
  static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
  }
}

// MARK: Protobuf

/// A minimal protobuf (proto3 wire format) encoder: fields are appended in call order.
///
/// Only what `tensorflow.Event` needs: varints (wire type 0), fixed64 doubles (wire type 1),
/// length-delimited strings, bytes and nested messages (wire type 2) and fixed32 floats
/// (wire type 5). Like the reference implementations, callers write fields in field-number
/// order and leave out proto3 scalars that hold their default value.
struct ProtobufEncoder {
  /// Protobuf wire types.
  enum WireType: UInt64 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
  }

  /// The encoded message so far.
  private(set) var bytes: [UInt8] = []

  /// Appends `value` as a base-128 varint, low groups first.
  mutating func appendVarint(_ value: UInt64) {
    var value = value
    while value >= 0x80 {
      bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
      value >>= 7
    }
    bytes.append(UInt8(value))
  }

  /// Appends a field key: `(field << 3) | wireType`.
  mutating func appendKey(_ field: Int, _ wireType: WireType) {
    appendVarint(UInt64(field) << 3 | wireType.rawValue)
  }

  /// An `int32` or `int64` field. Negative values take ten bytes (two's complement as
  /// 64 bits), as the protobuf spec requires for both types.
  mutating func appendInt(_ field: Int, _ value: Int64) {
    appendKey(field, .varint)
    appendVarint(UInt64(bitPattern: value))
  }

  /// A `double` field (fixed64, little-endian IEEE 754).
  mutating func appendDouble(_ field: Int, _ value: Double) {
    appendKey(field, .fixed64)
    bytes += TFRecord.littleEndianBytes(value.bitPattern)
  }

  /// A `float` field (fixed32, little-endian IEEE 754).
  mutating func appendFloat(_ field: Int, _ value: Float) {
    appendKey(field, .fixed32)
    bytes += TFRecord.littleEndianBytes(value.bitPattern)
  }

  /// A `bytes` field.
  mutating func appendBytes(_ field: Int, _ value: some Collection<UInt8>) {
    appendKey(field, .lengthDelimited)
    appendVarint(UInt64(value.count))
    bytes += value
  }

  /// A `string` field, UTF-8 encoded.
  mutating func appendString(_ field: Int, _ value: String) {
    appendBytes(field, Array(value.utf8))
  }

  /// An embedded message field.
  mutating func appendMessage(_ field: Int, _ message: ProtobufEncoder) {
    appendBytes(field, message.bytes)
  }
}
