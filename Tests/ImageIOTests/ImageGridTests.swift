import DistillCore
import Foundation
import Testing

@testable import ImageIO

@Suite struct ImageGridTests {
  /// Image `k` of a `[N, 1, 2, 2]` batch holds `10k + 1 ... 10k + 4`.
  func batch(_ count: Int, channels: Int = 1) -> Tensor {
    var scalars: [Float] = []
    for k in 0..<count {
      for c in 0..<channels {
        for i in 1...4 { scalars.append(Float(10 * k + 100 * c + i)) }
      }
    }
    return Tensor(shape: [count, channels, 2, 2], scalars: scalars)
  }

  @Test func threeImagesMakeATwoByTwoGridWithPadding() throws {
    let grid = try imageGrid(batch(3), padding: 1, padValue: 0)
    // Default columns ceil(sqrt(3)) = 2, rows 2: sides 2 * (2 + 1) + 1 = 7.
    #expect(grid.shape == [1, 7, 7])
    let expected: [[Float]] = [
      [0, 0, 0, 0, 0, 0, 0],
      [0, 1, 2, 0, 11, 12, 0],
      [0, 3, 4, 0, 13, 14, 0],
      [0, 0, 0, 0, 0, 0, 0],
      [0, 21, 22, 0, 0, 0, 0],
      [0, 23, 24, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0],
    ]
    #expect(grid.scalars == expected.flatMap { $0 })
  }

  @Test func columnsAndDefaultPaddingFollowTorchvision() throws {
    // make_grid(x, nrow=3, padding=2, pad_value=0.5) on 2 images of 2x2: columns = min(3, 2).
    let grid = try imageGrid(batch(2, channels: 3), columns: 3, padValue: 0.5)
    #expect(grid.shape == [3, 2 * 1 + 2 + 2, 2 * 2 + 2 * 2 + 2])
    let (height, width) = (grid.shape[1], grid.shape[2])
    let scalars = grid.scalars
    func at(_ c: Int, _ y: Int, _ x: Int) -> Float { scalars[(c * height + y) * width + x] }
    #expect(at(0, 0, 0) == 0.5)
    #expect(at(0, 2, 2) == 1 && at(0, 3, 3) == 4)
    #expect(at(2, 2, 6) == 211 && at(2, 3, 7) == 214)
    #expect(at(1, 2, 4) == 0.5 && at(1, 2, 5) == 0.5)
    #expect(scalars.filter { $0 == 0.5 }.count == 3 * (height * width - 8))
  }

  @Test func singleColumnAndSingleImage() throws {
    let column = try imageGrid(batch(2), columns: 1, padding: 0)
    #expect(column.shape == [1, 4, 2])
    #expect(column.scalars == [1, 2, 3, 4, 11, 12, 13, 14])
    let single = try imageGrid(batch(1), padding: 1, padValue: 0)
    #expect(single.scalars == [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0])
  }

  @Test func badArgumentsThrow() {
    #expect(throws: DistillError.self) { try imageGrid(Tensor.zeros([2, 2, 2])) }
    #expect(throws: DistillError.self) { try imageGrid(Tensor.zeros([0, 1, 2, 2])) }
    #expect(throws: DistillError.self) { try imageGrid(batch(2), columns: 0) }
    #expect(throws: DistillError.self) { try imageGrid(batch(2), padding: -1) }
  }

  @Test func modelSpaceBatchIsWrittenAsAPNGGrid() throws {
    let samples = Tensor(shape: [2, 3, 2, 2], scalars: (0..<24).map { Float($0) / 11.5 - 1 })
    try withScratchFolder { folder in
      let path = folder + "/grid.png"
      try ImageFile.writeGridPNG(signedUnit: samples, to: path, columns: 2, padding: 1)
      let read = try ImageFile.read(path)
      let expected = try imageGrid(ImageFile.fromSignedUnit(samples), columns: 2, padding: 1)
      #expect(read.shape == [3, 4, 7])
      #expect(read.scalars == expected.scalars.map { ($0 * 255).rounded() / 255 })
    }
  }
}
