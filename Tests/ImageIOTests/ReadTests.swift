import DistillCore
import Foundation
import Testing

@testable import ImageIO

@Suite struct ReadTests {
  static let pngFixtures = [
    "gray1.png", "gray2.png", "gray4.png", "gray8.png", "gray16.png",
    "gray_alpha8.png", "gray_alpha16.png", "gray8_trns.png",
    "rgb8.png", "rgb16.png", "rgba8.png", "rgba16.png",
    "palette8.png", "palette8_trns.png",
    "interlaced_rgb8.png", "interlaced_gray1.png", "interlaced_rgba16.png",
  ]

  @Test(arguments: pngFixtures)
  func pngFixtureReadsExactly(name: String) throws {
    let expected = try #require(try expectedImages()[name])
    let image = try ImageFile.read(try fixturePath(name))
    #expect(image.shape == expected.shape)
    #expect(image.scalars == expected.scalars, "\(name): max difference \(maxDifference(image.scalars, expected.scalars))")
  }

  @Test func paletteWithTransparencyGainsAlpha() throws {
    #expect(try ImageFile.read(try fixturePath("palette8.png")).shape[0] == 3)
    #expect(try ImageFile.read(try fixturePath("palette8_trns.png")).shape[0] == 4)
    #expect(try ImageFile.read(try fixturePath("gray8_trns.png")).shape[0] == 2)
  }

  @Test func sixteenBitPrecisionIsKept() throws {
    let image = try ImageFile.read(try fixturePath("gray16.png"))
    // Values that are not multiples of 257 would be lost by reducing to 8 bits.
    let levels = image.scalars.map { Int(($0 * 65535).rounded()) }
    #expect(levels.contains { $0 % 257 != 0 })
  }

  @Test(arguments: ["gray.jpg", "rgb.jpg", "rgb420.jpg", "progressive.jpg"])
  func jpegFixtureMatchesPillow(name: String) throws {
    let expected = try #require(try expectedImages()[name])
    let image = try ImageFile.read(try fixturePath(name))
    #expect(image.shape == expected.shape)
    // Decoders may differ by a level or two (IDCT, upsampling); libjpeg-turbo and Pillow
    // usually agree exactly.
    #expect(maxDifference(image.scalars, expected.scalars) <= 2.0 / 255)
  }

  @Test func formatComesFromContentNotExtension() throws {
    try withScratchFolder { folder in
      let disguised = folder + "/really-a-png.jpg"
      try FileManager.default.copyItem(atPath: try fixturePath("rgb8.png"), toPath: disguised)
      let expected = try #require(try expectedImages()["rgb8.png"])
      #expect(try ImageFile.read(disguised).scalars == expected.scalars)
    }
  }

  @Test func cmykJPEGIsRefused() throws {
    let path = try fixturePath("cmyk.jpg")
    let error = expectErrorNaming(path) { _ = try ImageFile.read(path) }
    #expect(error?.description.contains("CMYK JPEG is not supported") == true)
  }

  @Test(arguments: ["huge.png", "huge.jpg"])
  func absurdDimensionsAreRefused(name: String) throws {
    let path = try fixturePath(name)
    let error = expectErrorNaming(path) { _ = try ImageFile.read(path) }
    #expect(error?.description.contains("limit") == true, "\(String(describing: error))")
    guard case .malformed = error else {
      Issue.record("expected .malformed, got \(String(describing: error))")
      return
    }
  }

  @Test func readRGBExpandsGrayAndHandlesAlpha() throws {
    let gray = try ImageFile.read(try fixturePath("gray8.png"))
    let grayRGB = try ImageFile.readRGB(try fixturePath("gray8.png"))
    #expect(grayRGB.shape == [3] + gray.shape.dropFirst())
    #expect(grayRGB.scalars == gray.scalars + gray.scalars + gray.scalars)

    let rgba = try ImageFile.read(try fixturePath("rgba8.png"))
    let plane = rgba.shape[1] * rgba.shape[2]
    let (colour, alpha) = (Array(rgba.scalars[..<(3 * plane)]), Array(rgba.scalars[(3 * plane)...]))
    #expect(try ImageFile.readRGB(try fixturePath("rgba8.png")).scalars == colour)
    let overBlack = try ImageFile.readRGB(try fixturePath("rgba8.png"), alpha: .composite(over: 0))
    #expect(overBlack.scalars == colour.enumerated().map { $0.element * alpha[$0.offset % plane] })
    let overWhite = try ImageFile.readRGB(try fixturePath("rgba8.png"), alpha: .composite(over: 1))
    let white = colour.enumerated().map { $0.element * alpha[$0.offset % plane] + (1 - alpha[$0.offset % plane]) }
    #expect(overWhite.scalars == white)

    let palette = try ImageFile.readRGB(try fixturePath("palette8_trns.png"))
    #expect(palette.shape == [3, 4, 5])
  }

  @Test func signedUnitMapsBothWays() {
    let image = Tensor(shape: [1, 1, 4], scalars: [0, 0.25, 0.5, 1])
    #expect(ImageFile.toSignedUnit(image).scalars == [-1, -0.5, 0, 1])
    #expect(ImageFile.fromSignedUnit(ImageFile.toSignedUnit(image)).scalars == image.scalars)
    #expect(ImageFile.fromSignedUnit(Tensor(shape: [3], scalars: [-3, 5, .nan])).scalars == [0, 1, 0])
  }
}
