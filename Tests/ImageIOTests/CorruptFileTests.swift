import DistillCore
import Foundation
import Testing

@testable import ImageIO

/// Broken inputs must throw a `DistillError` naming the file: never crash, never hang.
@Suite struct CorruptFileTests {
  func fixtureBytes(_ name: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: try fixturePath(name))))
  }

  /// Writes `bytes` into a scratch folder as `name` and expects reading it to fail.
  @discardableResult
  func expectReadFails(_ bytes: [UInt8], name: String, sourceLocation: SourceLocation = #_sourceLocation) throws
    -> DistillError?
  {
    try withScratchFolder { folder in
      let path = folder + "/" + name
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      return expectErrorNaming(path, sourceLocation: sourceLocation) { _ = try ImageFile.read(path) }
    }
  }

  @Test func truncatedPNG() throws {
    let bytes = try fixtureBytes("rgb8.png")
    try expectReadFails(Array(bytes[..<(bytes.count / 2)]), name: "truncated.png")
    try expectReadFails(Array(bytes[..<20]), name: "header-only.png")
    try expectReadFails(Array(bytes[..<(bytes.count - 12)]), name: "no-iend.png")
  }

  @Test func pngWithCorruptedIDAT() throws {
    let bytes = try fixtureBytes("rgb8.png")
    let idat = try #require(findSubsequence(Array("IDAT".utf8), in: bytes))
    let length = bytes[(idat - 4)..<idat].reduce(0) { $0 << 8 | Int($1) }
    // A wrong checksum with intact data: libpng's CRC check refuses the critical chunk.
    var badCRC = bytes
    badCRC[idat + 4 + length] ^= 0x01
    let error = try expectReadFails(badCRC, name: "bad-crc.png")
    #expect(error?.description.contains("CRC") == true, "\(String(describing: error))")
    // A flipped data byte: zlib (or the CRC check) refuses it.
    var badData = bytes
    badData[idat + 6] ^= 0x5A
    try expectReadFails(badData, name: "bad-data.png")
  }

  @Test(arguments: ["short_idat.png", "bad_zlib.png"])
  func pngWithBadImageDataBehindValidCRCs(name: String) throws {
    let path = try fixturePath(name)
    expectErrorNaming(path) { _ = try ImageFile.read(path) }
  }

  @Test func truncatedJPEG() throws {
    let bytes = try fixtureBytes("rgb.jpg")
    try expectReadFails(Array(bytes[..<(bytes.count / 2)]), name: "half.jpg")
    try expectReadFails(Array(bytes[..<(bytes.count - 40)]), name: "no-tail.jpg")
    try expectReadFails(Array(bytes[..<3]), name: "magic-only.jpg")
  }

  @Test func jpegWithCorruptScanData() throws {
    var bytes = try fixtureBytes("gray.jpg")
    let sos = try #require(findSubsequence([0xFF, 0xDA], in: bytes))
    for i in (sos + 20)..<(bytes.count - 2) where bytes[i] != 0xFF && bytes[i - 1] != 0xFF { bytes[i] = 0xFF }
    try expectReadFails(bytes, name: "scrambled.jpg")
  }

  @Test func randomBytes() throws {
    var values = SeededValues(seed: 7)
    let bytes = (0..<300).map { _ in UInt8(values.next() * 256) }
    try expectReadFails(bytes, name: "noise.png")
    try expectReadFails([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + bytes, name: "png-magic-then-noise.png")
    try expectReadFails([0xFF, 0xD8, 0xFF] + bytes, name: "jpeg-magic-then-noise.jpg")
  }

  @Test func emptyFile() throws {
    let error = try expectReadFails([], name: "empty.png")
    #expect(error?.description.contains("empty") == true)
  }

  @Test func missingFile() throws {
    try withScratchFolder { folder in
      let path = folder + "/does-not-exist.png"
      let error = expectErrorNaming(path) { _ = try ImageFile.read(path) }
      guard case .io = error else {
        Issue.record("expected .io, got \(String(describing: error))")
        return
      }
    }
  }

  @Test func directoryIsNotAnImage() throws {
    try withScratchFolder { folder in
      _ = expectErrorNaming(folder) { _ = try ImageFile.read(folder) }
    }
  }
}

func findSubsequence(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
  guard haystack.count >= needle.count else { return nil }
  return (0...(haystack.count - needle.count)).first { Array(haystack[$0..<($0 + needle.count)]) == needle }
}
