import DistillCore

// TODO(imageio-merge): PNG output arrives with ImageIO (PNG writing and `imageGrid` are being
// written on the imageio branch). On merge: make `writeImageGrid` map samples from [-1, 1] to
// 8-bit, tile them with `imageGrid` and write the PNG atomically, and set
// `imageGridOutputAvailable` to true (or delete it with its check in SampleTeacherCommand).

/// Whether `--out *.png` works in this build.
let imageGridOutputAvailable = false

/// Writes `samples` (`[N, C, H, W]`, values in [-1, 1]) as one PNG image grid at `path`.
func writeImageGrid(_ samples: Tensor, to path: String) throws {
  throw DistillError.invalidValue(
    location: "--out", expected: "a .safetensors path (TODO: PNG output arrives with ImageIO)", found: path)
}
