import Foundation
import Testing

@testable import DistillPipeline

// Golden bytes were produced once with the `tensorboard` pip package (2.21.0), whose protos
// are TensorFlow's:
//
//   from tensorboard.compat.proto.event_pb2 import Event
//   from tensorboard.compat.proto.summary_pb2 import Summary
//   from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
//   import struct
//   scalar = Event(wall_time=1700000000.25, step=42, summary=Summary(value=[
//       Summary.Value(tag="loss/train", simple_value=0.125)])).SerializeToString()
//   negative = Event(wall_time=1.5, step=-3, summary=Summary(value=[
//       Summary.Value(tag="x", simple_value=-2.5)])).SerializeToString()
//   version = Event(wall_time=1700000000.5, file_version="brain.Event:2").SerializeToString()
//   img = Summary.Image(height=2, width=3, colorspace=3,
//       encoded_image_string=bytes([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255]))
//   image = Event(wall_time=1700000001.0, step=7, summary=Summary(value=[
//       Summary.Value(tag="samples", image=img)])).SerializeToString()
//   hdr = struct.pack("<Q", len(image))
//   record = (hdr + struct.pack("<I", masked_crc32c(hdr)) + image
//       + struct.pack("<I", masked_crc32c(image)))
//   print(scalar.hex(), negative.hex(), version.hex(), image.hex(), record.hex())
//   print(hex(masked_crc32c(b"123456789")), hex(masked_crc32c(b"")))
private enum Golden {
  static let scalar = "0900001040fc54d941102a2a130a110a0a6c6f73732f747261696e150000003e"
  static let negative = "09000000000000f83f10fdffffffffffffffff012a0a0a080a017815000020c0"
  static let fileVersion = "0900002040fc54d9411a0d627261696e2e4576656e743a32"
  static let image =
    "0900004040fc54d94110072a1d0a1b0a0773616d706c65732210080210031803220889504e47000102ff"
  static let imageRecord =
    "2a00000000000000ae8d91f50900004040fc54d94110072a1d0a1b0a0773616d706c657322100802100318"
    + "03220889504e47000102ffb7b473be"
}

private func hex(_ bytes: some Sequence<UInt8>) -> String {
  bytes.map { String(format: "%02x", $0) }.joined()
}

// MARK: Test-side reader

/// Why a TFRecord failed to read back.
private enum RecordError: Error { case truncated, badLengthCRC, badDataCRC }

/// Splits a TFRecord file into its records, checking both masked CRCs of each.
private func readRecords(_ bytes: [UInt8]) throws -> [[UInt8]] {
  func u64(_ at: Int) -> UInt64 {
    (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << ($1 * 8) }
  }
  func u32(_ at: Int) -> UInt32 {
    (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << ($1 * 8) }
  }
  var records: [[UInt8]] = []
  var offset = 0
  while offset < bytes.count {
    guard offset + 12 <= bytes.count else { throw RecordError.truncated }
    let length = Int(u64(offset))
    guard CRC32C.masked(bytes[offset..<offset + 8]) == u32(offset + 8) else {
      throw RecordError.badLengthCRC
    }
    let start = offset + 12
    guard start + length + 4 <= bytes.count else { throw RecordError.truncated }
    let data = Array(bytes[start..<start + length])
    guard CRC32C.masked(data) == u32(start + length) else { throw RecordError.badDataCRC }
    records.append(data)
    offset = start + length + 4
  }
  return records
}

/// A decoded protobuf field value.
private enum Field {
  case varint(UInt64)
  case fixed64(UInt64)
  case bytes([UInt8])
  case fixed32(UInt32)

  var int: Int64? { if case .varint(let v) = self { Int64(bitPattern: v) } else { nil } }
  var double: Double? { if case .fixed64(let v) = self { Double(bitPattern: v) } else { nil } }
  var float: Float? { if case .fixed32(let v) = self { Float(bitPattern: v) } else { nil } }
  var data: [UInt8]? { if case .bytes(let v) = self { v } else { nil } }
  var string: String? { data.map { String(decoding: $0, as: UTF8.self) } }
  var message: [Int: [Field]]? { data.flatMap { try? decodeMessage($0) } }
}

/// Decodes a protobuf message into its fields by number (repeated fields keep their order).
private func decodeMessage(_ bytes: [UInt8]) throws -> [Int: [Field]] {
  struct Malformed: Error {}
  var fields: [Int: [Field]] = [:]
  var i = 0
  func varint() throws -> UInt64 {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    while true {
      guard i < bytes.count, shift < 64 else { throw Malformed() }
      let byte = bytes[i]
      i += 1
      value |= UInt64(byte & 0x7F) << shift
      if byte < 0x80 { return value }
      shift += 7
    }
  }
  func fixed(_ count: Int) throws -> UInt64 {
    guard i + count <= bytes.count else { throw Malformed() }
    defer { i += count }
    return (0..<count).reduce(0) { $0 | UInt64(bytes[i + $1]) << ($1 * 8) }
  }
  while i < bytes.count {
    let key = try varint()
    let field: Field
    switch key & 7 {
    case 0: field = .varint(try varint())
    case 1: field = .fixed64(try fixed(8))
    case 2:
      let length = Int(try varint())
      guard i + length <= bytes.count else { throw Malformed() }
      field = .bytes(Array(bytes[i..<i + length]))
      i += length
    case 5: field = .fixed32(UInt32(try fixed(4)))
    default: throw Malformed()
    }
    fields[Int(key >> 3), default: []].append(field)
  }
  return fields
}

private func temporaryDirectory() -> String {
  let dir = FileManager.default.temporaryDirectory
    .appendingPathComponent("tensorboard-tests-\(UUID().uuidString)").path
  return dir
}

// MARK: Tests

@Suite("TensorBoard")
struct TensorBoardTests {
  @Test("CRC-32C matches the standard check vectors")
  func crc32cVectors() {
    #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    // RFC 3720 (iSCSI), appendix B.4.
    #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    #expect(CRC32C.checksum([UInt8]()) == 0)
    #expect(CRC32C.table.count == 256 && CRC32C.table[1] == 0xF26B_8303)
  }

  @Test("masked CRC matches TensorFlow's masked_crc32c")
  func maskedCRC() {
    #expect(CRC32C.masked(Array("123456789".utf8)) == 0xC78A_B0E5)
    #expect(CRC32C.masked([UInt8]()) == 0xA282_EAD8)
    let crc: UInt32 = 0xE306_9283
    #expect(CRC32C.mask(crc) == ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
  }

  @Test("protobuf varints, including ten-byte negative integers")
  func varints() {
    var encoder = ProtobufEncoder()
    encoder.appendVarint(0)
    encoder.appendVarint(1)
    encoder.appendVarint(300)
    encoder.appendVarint(UInt64.max)
    #expect(hex(encoder.bytes) == "0001ac02" + "ffffffffffffffffff01")
    var negative = ProtobufEncoder()
    negative.appendInt(2, -1)
    #expect(hex(negative.bytes) == "10ffffffffffffffffff01")
  }

  @Test("event bytes equal Python's Event.SerializeToString()")
  func goldenEvents() {
    let scalar = TensorBoardEvent.scalar(
      tag: "loss/train", value: 0.125, step: 42, wallTime: 1_700_000_000.25)
    #expect(hex(scalar) == Golden.scalar)
    let negative = TensorBoardEvent.scalar(tag: "x", value: -2.5, step: -3, wallTime: 1.5)
    #expect(hex(negative) == Golden.negative)
    #expect(hex(TensorBoardEvent.fileVersion(wallTime: 1_700_000_000.5)) == Golden.fileVersion)
    let image = TensorBoardEvent.image(
      tag: "samples", encoded: [0x89, 0x50, 0x4E, 0x47, 0, 1, 2, 255], height: 2, width: 3,
      colorspace: 3, step: 7, wallTime: 1_700_000_001)
    #expect(hex(image) == Golden.image)
    #expect(hex(TFRecord.frame(image)) == Golden.imageRecord)
  }

  @Test("a written file parses back: name, framing, CRCs and events")
  func roundTrip() throws {
    let root = temporaryDirectory()
    let dir = root + "/nested/run"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let before = Int(Date().timeIntervalSince1970)
    let writer = try TensorBoardWriter(directory: dir)
    let png: [UInt8] =
      [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + (0..<300).map { UInt8($0 % 251) }
    writer.addScalar("loss", 0.5, step: 0, wallTime: 1000)
    writer.addScalar("loss", 0.25, step: 1)
    writer.addImage("samples", pngData: Data(png), height: 4, width: 5, channels: 3, step: 1)
    writer.close()
    writer.close()
    writer.addScalar("ignored", 1, step: 2)
    #expect(writer.lastError == nil)

    let name = (writer.path as NSString).lastPathComponent
    #expect((writer.path as NSString).deletingLastPathComponent == dir)
    let parts = name.split(separator: ".", maxSplits: 4).map(String.init)
    #expect(parts.count == 5 && Array(parts.prefix(3)) == ["events", "out", "tfevents"])
    let seconds = Int(parts[3]) ?? 0
    #expect(seconds >= before && seconds <= Int(Date().timeIntervalSince1970))
    #expect(!parts[4].isEmpty)

    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))
    let events = try readRecords(bytes).map(decodeMessage)
    try #require(events.count == 4)

    #expect(events[0][3]?.first?.string == "brain.Event:2")
    #expect((events[0][1]?.first?.double ?? 0) >= Double(before))

    func summaryValue(_ event: [Int: [Field]]) -> [Int: [Field]]? {
      event[5]?.first?.message?[1]?.first?.message
    }
    #expect(events[1][1]?.first?.double == 1000)
    #expect(events[1][2] == nil)  // step 0 is the proto3 default and left out
    #expect(summaryValue(events[1])?[1]?.first?.string == "loss")
    #expect(summaryValue(events[1])?[2]?.first?.float == 0.5)
    #expect(events[2][2]?.first?.int == 1)
    #expect(summaryValue(events[2])?[2]?.first?.float == 0.25)

    let imageValue = try #require(summaryValue(events[3]))
    #expect(imageValue[1]?.first?.string == "samples")
    let image = try #require(imageValue[4]?.first?.message)
    #expect(image[1]?.first?.int == 4)
    #expect(image[2]?.first?.int == 5)
    #expect(image[3]?.first?.int == 3)
    #expect(image[4]?.first?.data == png)
  }

  @Test("flush makes events visible while the writer stays open")
  func flushOnDemand() throws {
    let dir = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let writer = try TensorBoardWriter(directory: dir)
    writer.addScalar("a", 1, step: 1)
    writer.flush()
    let records = try readRecords([UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path))))
    #expect(records.count == 2)
    writer.close()
  }

  @Test("two writers in the same directory get distinct files")
  func distinctFiles() throws {
    let dir = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let first = try TensorBoardWriter(directory: dir)
    let second = try TensorBoardWriter(directory: dir)
    #expect(first.path != second.path)
    #expect(second.path.contains("tfevents"))
  }

  @Test("an uncreatable directory throws an io error")
  func uncreatableDirectory() throws {
    let dir = temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect(FileManager.default.createFile(atPath: dir, contents: Data()))
    #expect(throws: DistillError.self) { try TensorBoardWriter(directory: dir + "/run") }
  }
}
