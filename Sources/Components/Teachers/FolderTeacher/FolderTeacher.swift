import DistillCore
import DistillDiffusion
import DistillPipeline

/// A teacher loaded from a folder: a diffusers `UNet2DModel` folder (`config.json` +
/// `diffusion_pytorch_model.safetensors`, with `scheduler/` or the manifest's schedule), a
/// diffusers pipeline folder, a Stable-Diffusion-layout folder (a text-conditional latent
/// teacher), or a Distillery denoiser folder (a trained teacher's `runs/NAME/denoiser`). Weights are checked against the architecture when loading.
///
/// `weightFormat: "bf16"` is applied by the assembly once every component is built
/// (``teacherWeightsParameter``), so that copies of the teacher start from its float32 weights.
public enum FolderTeacher: TeacherComponent {
  public static let id = "folder"
  public static let summary =
    "a teacher folder: diffusers UNet2DModel, diffusers pipeline, Stable Diffusion layout (text-to-image, latent), or Distillery denoiser (docs/teachers.md)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("path", .path(mustExist: true), "the folder, relative to the manifest"),
    .optional(
      "nullClass", .integer(1...16_777_216),
      "for a class-conditional UNet trained with label dropout: its \"no class\" label, the last row of num_class_embeds (guidance needs it)"
    ),
    teacherWeightsParameter,
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Denoiser {
    let teacher = try loadTeacher(path: entry.path("path"))
    (teacher as? any SavableDenoiser)?.weightsModule?.eval()
    if let nullClass = entry.optionalInt("nullClass") {
      guard let unet = teacher as? UNetDenoiser else {
        throw DistillError.invalidValue(
          location: "\(entry.path).nullClass",
          expected: "no nullClass for a teacher that is not a class-conditional UNet",
          found: String(nullClass))
      }
      try unet.setNullClass(nullClass, location: "\(entry.path).nullClass")
    }
    return teacher
  }
}
