import DistillCore
import DistillPipeline
import Foundation
import ImageIO

/// Writes `samples` (`[N, ...]`) to `path` (atomically): a `.safetensors` path gets the tensor
/// `samples` (float32) and `metadata`; any other path a PNG, an image grid of image samples
/// (`[N, C, H, W]`, values in [-1, 1]) or a scatter plot of 2-D points. Other samples have no
/// picture: they are refused.
func writeSamples(_ samples: Tensor, to path: String, metadata: [String: String]) throws {
  if (path as NSString).pathExtension.lowercased() == "safetensors" {
    try SafetensorsFile.write(["samples": samples], metadata: metadata, to: path)
  } else if samples.rank == 4, [1, 3, 4].contains(samples.shape[1]) {
    try ImageFile.writeGridPNG(signedUnit: samples, to: path)
  } else if samples.rank == 2, samples.shape[1] == 2 {
    try ImageFile.writePNG(
      ScatterPlot.render(samples: samples, reference: nil, bounds: ScatterPlot.bounds(samples)), to: path)
  } else {
    throw DistillError.invalidValue(
      location: "--out", expected: "a .safetensors path: samples of shape \(samples.shape) are not images", found: path)
  }
}
