import DistillCore
import DistillDiffusion
import DistillNN

/// The `lpips` object of a manifest entry that uses LPIPS as a distance (the regression,
/// knowledge-distillation and consistency losses, the teacher-student metric):
/// `{"net": "alex" | "vgg" | "squeeze", "weights": "lpips-vgg.safetensors"}`, the weights
/// being the `lpips` package's state dict converted to safetensors (docs/lpips.md).
///
/// There is no default for the weights: LPIPS with a random trunk is not LPIPS, so an entry
/// that asks for it without weights is refused when the pipeline is built.
public enum LPIPSOptions {
  /// The keys of the `lpips` object.
  public static let parameters: [ParameterSpec] = [
    .choice("net", LPIPS.Network.self, default: .alex,
      "the trunk whose features LPIPS compares"),
    ParameterSpec("weights", .path(mustExist: true), "the LPIPS weights, a safetensors state dict (docs/lpips.md)"),
  ]

  /// The parameter an entry declares for it.
  public static func spec(_ use: String) -> ParameterSpec {
    .optional(
      "lpips", .object,
      "\(use): {\"net\": \"alex\"|\"vgg\"|\"squeeze\" (default alex), \"weights\": PATH}, the lpips package's weights converted to safetensors (docs/lpips.md)"
    )
  }

  /// The LPIPS network of `entry`'s `lpips` object, loaded and checked against the images it
  /// will compare (`imageShape`, one image `[3, H, W]`); `nil` when the entry has none.
  ///
  /// - Throws: ``ManifestError`` naming `<entry>.lpips.<key>` for a bad key, a missing
  ///   `weights` or a missing file; ``DistillError`` naming the weights file and key for weights
  ///   of another trunk, and `<entry>.lpips.net` for images that are not `[3, H, W]` with sides
  ///   of at least the trunk's minimum (31 alex, 16 vgg, 17 squeeze).
  public static func load(_ entry: ComponentEntry, _ context: BuildContext, imageShape: [Int]?) throws -> LPIPS? {
    guard case .object(let object)? = entry.object("lpips") else { return nil }
    let path = "\(entry.path).lpips"
    var problems: [ManifestProblem] = []
    guard
      let options = context.registry.validateParameters(
        object, specs: parameters, owner: "lpips", type: "lpips", path: path, baseDirectory: entry.baseDirectory,
        problems: &problems)
    else {
      throw ManifestError(source: context.manifest.source, problems: problems)
    }
    let network: LPIPS.Network = options.choice("net")
    guard let shape = imageShape, shape.count == 3, shape[0] == 3, min(shape[1], shape[2]) >= network.minimumSide else {
      let sides = LPIPS.Network.allCases.map { "\($0.rawValue) \($0.minimumSide)" }.joined(separator: ", ")
      throw DistillError.invalidValue(
        location: "\(path).net",
        expected: "RGB images [3, H, W] in [-1, 1] with sides of at least \(network.minimumSide) for LPIPS \(network.rawValue) (the least sides: \(sides))",
        found: imageShape.map { "samples of shape \($0)" } ?? "no sample shape")
    }
    return try LPIPS.load(network: network, weightsPath: options.path("weights"))
  }

  /// The LPIPS network of a loss entry whose `distance` is `"lpips"`; `nil` for another
  /// distance. The `lpips` object is required with that distance and refused without it.
  public static func load(_ entry: ComponentEntry, _ context: BuildContext, distance: String, imageShape: [Int]?)
    throws -> LPIPS?
  {
    guard distance == "lpips" else {
      guard !entry.has("lpips") else {
        throw DistillError.invalidValue(
          location: "\(entry.path).lpips", expected: "no lpips object unless \"distance\": \"lpips\"",
          found: "one with distance \"\(distance)\"")
      }
      return nil
    }
    guard entry.has("lpips") else {
      throw DistillError.invalidValue(
        location: "\(entry.path).lpips",
        expected:
          "{\"net\": \"alex\"|\"vgg\"|\"squeeze\", \"weights\": PATH} for \"distance\": \"lpips\" (LPIPS never runs with a random trunk; docs/lpips.md shows how to convert the weights)",
        found: "nothing")
    }
    return try load(entry, context, imageShape: imageShape)
  }

  /// The latent teacher whose decoder shows `generator`'s samples as images (LPIPS compares
  /// those), when the generator makes the teacher's latents; `nil` otherwise.
  public static func decoder(_ context: BuildContext, for generator: any Generator) -> (any LatentDenoiser)? {
    guard let latent = context.teacher as? any LatentDenoiser, latent.sampleShape == generator.sampleShape else {
      return nil
    }
    return latent
  }

  /// Throws when `target`, which should be images in [-1, 1] (data, a teacher's samples), has
  /// values beyond that range by more than `slack`; `what` names the target in the error.
  public static func checkedTarget(_ target: Tensor, what: String, location: String, slack: Float = 1e-3) throws {
    let limit = 1 + slack
    if let bad = target.scalars.firstIndex(where: { !($0 >= -limit && $0 <= limit) }) {
      throw DistillError.invalidValue(
        location: location, expected: "\(what) in [-1, 1] (LPIPS compares images in [-1, 1])",
        found: "\(target.scalars[bad]) at flat index \(bad)")
    }
  }
}
