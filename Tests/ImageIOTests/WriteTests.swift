import DistillCore
import Foundation
import Testing

@testable import ImageIO

@Suite struct WriteTests {

  @Test(arguments: [1, 2, 3, 4], [8, 16])
  func pngRoundTripIsExactAfterQuantisation(channels: Int, bitDepth: Int) throws {
    var values = SeededValues(seed: UInt64(channels * 100 + bitDepth))
    let image = values.tensor([channels, 7, 9])
    let levels = Float(bitDepth == 8 ? 255 : 65535)
    try withScratchFolder { folder in
      let path = folder + "/round-trip.png"
      try ImageFile.writePNG(image, to: path, bitDepth: bitDepth)
      let back = try ImageFile.read(path)
      #expect(back.shape == image.shape)
      #expect(back.scalars == image.scalars.map { ($0 * levels).rounded() / levels })
      // Quantised values survive a second round trip unchanged.
      try ImageFile.writePNG(back, to: path, bitDepth: bitDepth)
      #expect(try ImageFile.read(path).scalars == back.scalars)
    }
  }

  @Test func writingClampsAndZeroesNaN() throws {
    let image = Tensor(shape: [1, 1, 5], scalars: [-0.5, 1.5, .nan, .infinity, 0.5])
    try withScratchFolder { folder in
      try ImageFile.writePNG(image, to: folder + "/clamped.png")
      #expect(try ImageFile.read(folder + "/clamped.png").scalars == [0, 1, 0, 1, 128.0 / 255])
    }
  }

  @Test(arguments: [1, 3])
  func jpegRoundTripIsClose(channels: Int) throws {
    let (height, width) = (16, 24)
    let image = Tensor(shape: [channels, height, width]) { out in
      for c in 0..<channels {
        for y in 0..<height {
          for x in 0..<width {
            out[(c * height + y) * width + x] = 0.1 + 0.02 * Float(x) + 0.015 * Float(y) + 0.1 * Float(c)
          }
        }
      }
    }
    try withScratchFolder { folder in
      let path = folder + "/round-trip.jpg"
      try ImageFile.writeJPEG(image, to: path, quality: 95)
      let back = try ImageFile.read(path)
      #expect(back.shape == image.shape)
      #expect(maxDifference(back.scalars, image.scalars) < 0.03)
    }
  }

  @Test func jpegRejectsAlphaAndBadQuality() throws {
    try withScratchFolder { folder in
      #expect(throws: DistillError.self) {
        try ImageFile.writeJPEG(Tensor.zeros([4, 2, 2]), to: folder + "/a.jpg")
      }
      #expect(throws: DistillError.self) {
        try ImageFile.writeJPEG(Tensor.zeros([3, 2, 2]), to: folder + "/b.jpg", quality: 0)
      }
      #expect(throws: DistillError.self) {
        try ImageFile.writePNG(Tensor.zeros([3, 2, 2]), to: folder + "/c.png", bitDepth: 12)
      }
      #expect(throws: DistillError.self) {
        try ImageFile.writePNG(Tensor.zeros([5, 2, 2]), to: folder + "/d.png")
      }
      let entries = try FileManager.default.contentsOfDirectory(atPath: folder)
      #expect(entries.isEmpty)
    }
  }

  @Test func writeReplacesAnExistingFileAndLeavesNoTemporaries() throws {
    try withScratchFolder { folder in
      let path = folder + "/image.png"
      try ImageFile.writePNG(Tensor.zeros([1, 2, 2]), to: path)
      try ImageFile.writePNG(Tensor.ones([3, 3, 3]), to: path)
      #expect(try ImageFile.read(path).shape == [3, 3, 3])
      try ImageFile.writeJPEG(Tensor.ones([3, 8, 8]), to: folder + "/image.jpg")
      let entries = try FileManager.default.contentsOfDirectory(atPath: folder)
      #expect(entries.sorted() == ["image.jpg", "image.png"])
    }
  }

  @Test func failedWriteLeavesNothingAtTheTarget() throws {
    try withScratchFolder { folder in
      // No such folder: nothing can be created.
      let missing = folder + "/no-such-folder/image.png"
      expectErrorNaming(missing) { try ImageFile.writePNG(Tensor.zeros([1, 2, 2]), to: missing) }
      #expect(!FileManager.default.fileExists(atPath: missing))

      // The target is a non-empty folder: the rename fails, and the temporary file is removed.
      let blocked = folder + "/blocked.png"
      try FileManager.default.createDirectory(atPath: blocked, withIntermediateDirectories: false)
      try Data([1]).write(to: URL(fileURLWithPath: blocked + "/keep"))
      expectErrorNaming(blocked) { try ImageFile.writePNG(Tensor.zeros([1, 2, 2]), to: blocked) }
      expectErrorNaming(blocked) { try ImageFile.writeJPEG(Tensor.zeros([1, 2, 2]), to: blocked) }
      let entries = try FileManager.default.contentsOfDirectory(atPath: folder)
      #expect(entries == ["blocked.png"])
      let kept = try FileManager.default.contentsOfDirectory(atPath: blocked)
      #expect(kept == ["keep"])
    }
  }

  @Test func temporaryFileIsHiddenInTheTargetFolder() {
    let nested = AtomicFileWriter.makeTemporaryPath(beside: "/data/out/grid.png")
    #expect(nested.hasPrefix("/data/out/.grid.png.tmp-"))
    #expect(AtomicFileWriter.makeTemporaryPath(beside: "grid.png").hasPrefix(".grid.png.tmp-"))
    #expect(AtomicFileWriter.makeTemporaryPath(beside: "grid.png") != AtomicFileWriter.makeTemporaryPath(beside: "grid.png"))
  }
}
