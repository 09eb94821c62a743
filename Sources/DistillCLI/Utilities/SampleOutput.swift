import DistillCore
import ImageIO

/// Writes `samples` (`[N, C, H, W]`, values in [-1, 1]) as one PNG image grid at `path`
/// (written atomically). Vector samples have no picture: they are refused.
func writeImageGrid(_ samples: Tensor, to path: String) throws {
  guard samples.rank == 4, [1, 3, 4].contains(samples.shape[1]) else {
    throw DistillError.invalidValue(
      location: "--out", expected: "a .safetensors path: samples of shape \(samples.shape) are not images", found: path)
  }
  try ImageFile.writeGridPNG(signedUnit: samples, to: path)
}
