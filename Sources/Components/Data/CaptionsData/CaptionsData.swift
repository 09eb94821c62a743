import DistillCore
import DistillDiffusion
import DistillPipeline
import Foundation
import ImageIO

/// Prompts from a captions file, each row of a batch one prompt drawn uniformly from its row's
/// stream, carrying the prompt's embedding (computed once, when the run is built, by the
/// teacher's text encoder) and, when the file pairs prompts with images, the image's latent
/// (encoded once by the teacher's VAE) as the row's sample.
public final class CaptionSource: PromptDataSource, FiniteDataSource {
  public let prompts: [String]
  public let promptEmbeddings: Tensor
  /// The latents of the prompts' images `[prompts] + sampleShape`, when the file has images.
  public let latents: Tensor?
  public let sampleShape: [Int]

  init(prompts: [String], embeddings: Tensor, latents: Tensor?, sampleShape: [Int]) {
    precondition(
      embeddings.shape[0] == prompts.count && latents.map { $0.shape[0] == prompts.count } ?? true)
    self.prompts = prompts
    promptEmbeddings = embeddings
    self.latents = latents
    self.sampleShape = sampleShape
  }

  public var count: Int { prompts.count }

  public func rows(_ indices: [Int]) -> Batch {
    Batch(
      samples: latents?.gatheringRows(indices), embeddings: promptEmbeddings.gatheringRows(indices))
  }

  public func next(_ count: Int, using rng: inout RandomGenerator) throws -> Batch {
    rows(rng.integers(count: count, in: 0..<prompts.count))
  }
}

/// One line of a captions file: a prompt and, in JSONL, optionally an image.
struct Caption: Equatable {
  var prompt: String
  var image: String?

  /// The captions of `path`: JSONL (`.jsonl`: one object per line, `"prompt"` and optional
  /// `"image"`, a path relative to the file) or text (one prompt per line). Blank lines are
  /// skipped.
  ///
  /// - Throws: ``DistillError`` naming the file and line: an unreadable file, no prompts, a
  ///   line that is not an object, a missing or non-string `prompt`, a non-string `image`, an
  ///   unknown key, images on some lines only.
  static func read(_ path: String) throws -> [Caption] {
    guard let data = FileManager.default.contents(atPath: path),
      let text = String(data: data, encoding: .utf8)
    else {
      throw DistillError.io(path: path, reason: "cannot read the captions file as UTF-8 text")
    }
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
      .map {
        (number: $0.offset + 1, text: $0.element.trimmingCharacters(in: .whitespacesAndNewlines))
      }
      .filter { !$0.text.isEmpty }
    let jsonLines = (path as NSString).pathExtension.lowercased() == "jsonl"
    let base = (path as NSString).deletingLastPathComponent
    let captions = try lines.map { line -> Caption in
      guard jsonLines else { return Caption(prompt: line.text) }
      let location = "\(path):\(line.number)"
      guard case .object(let object) = try JSONValue.parse(Data(line.text.utf8), source: location)
      else {
        throw DistillError.invalidValue(
          location: location, expected: "an object {\"prompt\": ..., \"image\": ...}",
          found: line.text)
      }
      if let unknown = object.keys.sorted().first(where: { $0 != "prompt" && $0 != "image" }) {
        throw DistillError.invalidValue(
          location: "\(location): \(unknown)", expected: "only the keys prompt and image",
          found: "an unknown key")
      }
      guard case .string(let prompt)? = object["prompt"] else {
        throw DistillError.invalidValue(
          location: "\(location): prompt", expected: "a string",
          found: object["prompt"]?.summary ?? "nothing")
      }
      switch object["image"] {
      case nil: return Caption(prompt: prompt)
      case .string(let image)?: return Caption(prompt: prompt, image: resolve(image, against: base))
      case let value?:
        throw DistillError.invalidValue(
          location: "\(location): image", expected: "a path string", found: value.summary)
      }
    }
    guard !captions.isEmpty else {
      throw DistillError.malformed(path: path, detail: "holds no prompts")
    }
    let withImages = captions.filter { $0.image != nil }.count
    if withImages != 0, withImages != captions.count {
      let line = lines[captions.firstIndex { $0.image == nil }!].number
      throw DistillError.invalidValue(
        location: "\(path):\(line): image",
        expected:
          "an image on every line or on none (\(withImages) of \(captions.count) lines have one)",
        found: "nothing")
    }
    return captions
  }
}

public enum CaptionsData: DataComponent {
  public static let id = "captions"
  public static let summary =
    "prompts from a text file (one per line) or JSONL ({\"prompt\", \"image\"}), embedded once by a text-to-image teacher's text encoder"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec(
      "path", .path(mustExist: true),
      "the captions file: .jsonl (one {\"prompt\": ..., \"image\": ...} per line, image optional, relative to the file) or text (one prompt per line)"
    )
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource
  {
    let path = entry.path("path")
    guard let teacher = context.teacher as? TextToImageDenoiser else {
      throw DistillError.invalidValue(
        location: "\(entry.path).path",
        expected:
          "a text-to-image teacher (a Stable-Diffusion-layout folder) whose text encoder embeds the prompts of \(path)",
        found: context.teacher.map { "the teacher \"\($0.summary)\", which takes no prompts" }
          ?? "no teacher")
    }
    guard let sampleShape = teacher.sampleShape else {
      throw DistillError.invalidValue(
        location: "\(entry.path).path",
        expected: "a teacher whose UNet config has sample_size (the latent size)", found: "none")
    }
    let captions = try Caption.read(path)
    let (embeddings, truncated) = teacher.encode(prompts: captions.map(\.prompt))
    for (caption, dropped) in zip(captions, truncated) where dropped > 0 {
      FileHandle.standardError.write(
        Data(
          "warning: \(path): the prompt \"\(caption.prompt)\" is longer than the text encoder's \(teacher.promptConditioning.length) positions; its last \(dropped) tokens were dropped\n"
            .utf8))
    }
    let images = try captions.compactMap(\.image).map {
      try image($0, teacher: teacher, latentShape: sampleShape)
    }
    let latents =
      images.isEmpty
      ? nil : withoutGradients { teacher.pipeline.vae.latents(from: Tensor.stack(images)) }
    return CaptionSource(
      prompts: captions.map(\.prompt), embeddings: embeddings, latents: latents?.detached(),
      sampleShape: sampleShape)
  }

  /// The image at `path` as `[3, H, W]` in [−1, 1], of the size the VAE encodes to `latentShape`.
  static func image(_ path: String, teacher: TextToImageDenoiser, latentShape: [Int]) throws
    -> Tensor
  {
    let vae = teacher.pipeline.vae.config
    let side = latentShape[1] << (vae.blockOutChannels.count - 1)
    let image = ImageFile.toSignedUnit(try ImageFile.readRGB(path))
    guard image.shape == [vae.inChannels, side, side] else {
      throw DistillError.invalidValue(
        location: path,
        expected: "an image of \(side)x\(side) (the VAE's image size for latents \(latentShape))",
        found: "\(image.shape[2])x\(image.shape[1])")
    }
    return image
  }
}
