import DistillCore

/// Tiles a batch of images `[N, C, H, W]` into one image `[C, H', W']`, laid out like
/// `torchvision.utils.make_grid`: row-major, `columns` images a row and
/// `ceil(N / columns)` rows, with `padding` pixels of `padValue` around every cell, so
/// `H' = rows * (H + padding) + padding` and `W' = columns' * (W + padding) + padding`,
/// where `columns' = min(columns, N)`. Cells after the last image stay `padValue`.
///
/// Differences from torchvision: the default column count is `ceil(sqrt(N))` (torchvision
/// uses 8), the default `padValue` is 1 (white; torchvision uses 0), a one-channel batch stays
/// one channel (torchvision repeats it to three), and a batch of one is padded like any other
/// (torchvision returns the image as is).
///
/// - Throws: ``DistillError/shapeMismatch(operation:detail:)`` when `batch` is not 4-D with at
///   least one image, and ``DistillError/invalidValue(location:expected:found:)`` when
///   `columns` is below 1 or `padding` is negative.
public func imageGrid(_ batch: Tensor, columns: Int? = nil, padding: Int = 2, padValue: Float = 1) throws -> Tensor {
  let shape = batch.shape
  guard shape.count == 4, shape[0] > 0 else {
    throw DistillError.shapeMismatch(operation: "imageGrid", detail: "expected [N, C, H, W] with N > 0, got \(shape)")
  }
  let (count, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
  if let columns, columns < 1 {
    throw DistillError.invalidValue(location: "columns", expected: "at least 1", found: "\(columns)")
  }
  guard padding >= 0 else {
    throw DistillError.invalidValue(location: "padding", expected: "at least 0", found: "\(padding)")
  }
  let across = min(columns ?? Int(Double(count).squareRoot().rounded(.up)), count)
  let down = (count + across - 1) / across
  let cellHeight = height + padding, cellWidth = width + padding
  let gridHeight = down * cellHeight + padding, gridWidth = across * cellWidth + padding
  return batch.withUnsafeBufferPointer { source in
    Tensor(shape: [channels, gridHeight, gridWidth]) { out in
      out.initialize(repeating: padValue)
      for k in 0..<count {
        let top = (k / across) * cellHeight + padding, left = (k % across) * cellWidth + padding
        for c in 0..<channels {
          for y in 0..<height {
            let from = ((k * channels + c) * height + y) * width
            let to = (c * gridHeight + top + y) * gridWidth + left
            for x in 0..<width { out[to + x] = source[from + x] }
          }
        }
      }
    }
  }
}

extension ImageFile {
  /// Writes a batch of model-space images `[N, C, H, W]` in `[-1, 1]` as one PNG grid:
  /// maps them to `[0, 1]` with ``fromSignedUnit(_:)`` (clamping), tiles them with
  /// ``imageGrid(_:columns:padding:padValue:)`` (`padValue` is in `[0, 1]`), and writes the
  /// result with ``writePNG(_:to:bitDepth:)``, atomically.
  public static func writeGridPNG(
    signedUnit batch: Tensor, to path: String, columns: Int? = nil, padding: Int = 2, padValue: Float = 1,
    bitDepth: Int = 8
  ) throws {
    let grid = try imageGrid(fromSignedUnit(batch), columns: columns, padding: padding, padValue: padValue)
    try writePNG(grid, to: path, bitDepth: bitDepth)
  }
}
