import DistillCore
import Foundation
import Testing

@testable import ImageIO

/// Headers whose sides are each within `maximumSide` but whose area exceeds `maximumPixels`
/// are refused from the header, before the pixel buffer is allocated.
@Suite struct PixelLimitTests {
  /// CRC-32 (PNG's chunk checksum), bit by bit: a few chunks, no table needed.
  func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
      crc ^= UInt32(byte)
      for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
  }

  func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }

  func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let body = Array(type.utf8) + data
    return bigEndian(UInt32(data.count)) + body + bigEndian(crc32(body))
  }

  /// A PNG whose IHDR claims `width` x `height` 8-bit gray pixels, with one tiny IDAT.
  func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
    [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
      + chunk("IHDR", bigEndian(width) + bigEndian(height) + [8, 0, 0, 0, 0])
      + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + chunk("IEND", [])
  }

  func expectRefused(_ bytes: [UInt8], name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    try withScratchFolder { folder in
      let path = folder + "/" + name
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      let error = expectErrorNaming(path, sourceLocation: sourceLocation) { _ = try ImageFile.read(path) }
      #expect(
        error?.description.contains("exceeds the limit of \(ImageFile.maximumPixels) pixels") == true,
        "\(String(describing: error))", sourceLocation: sourceLocation)
    }
  }

  @Test func limitsAreTheDocumentedOnes() {
    #expect(ImageFile.maximumPixels == 1 << 26 && ImageFile.maximumSide == 16384)
  }

  @Test func pngOverThePixelLimitIsRefused() throws {
    // 12000 x 6000 = 72 M pixels: each side is allowed, the area is not.
    try expectRefused(pngHeader(width: 12000, height: 6000), name: "wide.png")
  }

  @Test func pngAtThePixelLimitGetsPastTheCheck() throws {
    // 8192 x 8192 is exactly the limit: the read fails later, on the missing image data.
    try withScratchFolder { folder in
      let path = folder + "/limit.png"
      try Data(pngHeader(width: 8192, height: 8192)).write(to: URL(fileURLWithPath: path))
      let error = expectErrorNaming(path) { _ = try ImageFile.read(path) }
      #expect(error?.description.contains("exceeds") == false, "\(String(describing: error))")
    }
  }

  @Test func jpegOverThePixelLimitIsRefused() throws {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try fixturePath("gray.jpg"))))
    let sof = try #require(findSubsequence([0xFF, 0xC0], in: bytes))
    bytes.replaceSubrange((sof + 5)..<(sof + 9), with: [0x3E, 0x80, 0x1F, 0x40])  // 16000 high, 8000 wide
    try expectRefused(bytes, name: "wide.jpg")
  }
}
