import DistillCore
import DistillDiffusion
import DistillPipeline
import Foundation
import ImageIO

/// Prompts from a captions file, or class prompts of labelled IDX images: each row of a batch
/// one row drawn uniformly from its row's stream, carrying its prompt's embedding (computed
/// once, when the run is built, by the text encoder) and, when the rows have images, the
/// image's latent (encoded once by the VAE) as the row's sample.
public final class CaptionSource: PromptDataSource, FiniteDataSource {
  public let prompts: [String]
  public let promptEmbeddings: Tensor
  /// The prompt of each row (an index into ``prompts``).
  public let rowPrompts: [Int]
  /// The latents of the rows' images `[rows] + sampleShape`, when the rows have images.
  public let latents: Tensor?
  public let sampleShape: [Int]
  /// For class prompts: the class of each prompt (prompt `k` is class `k`), `nil` otherwise.
  public let promptLabels: [Int]?

  init(
    prompts: [String], embeddings: Tensor, rowPrompts: [Int]? = nil, latents: Tensor?, sampleShape: [Int],
    classPrompts: Bool = false
  ) {
    let rows = rowPrompts ?? Array(prompts.indices)
    precondition(
      embeddings.shape[0] == prompts.count && latents.map { $0.shape[0] == rows.count } ?? true
        && rows.allSatisfy { prompts.indices.contains($0) })
    self.prompts = prompts
    promptEmbeddings = embeddings
    self.rowPrompts = rows
    self.latents = latents
    self.sampleShape = sampleShape
    promptLabels = classPrompts ? Array(prompts.indices) : nil
  }

  public var count: Int { rowPrompts.count }
  public var labelNames: [String]? { promptLabels == nil ? nil : prompts }

  public func rows(_ indices: [Int]) -> Batch {
    let promptIndices = indices.map { rowPrompts[$0] }
    return Batch(
      samples: latents?.gatheringRows(indices), labels: promptLabels.map { labels in promptIndices.map { labels[$0] } },
      embeddings: promptEmbeddings.gatheringRows(promptIndices))
  }

  public func next(_ count: Int, using rng: inout RandomGenerator) throws -> Batch {
    rows(rng.integers(count: count, in: 0..<rowPrompts.count))
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
    .optional(
      "path", .path(mustExist: true),
      "the captions file: .jsonl (one {\"prompt\": ..., \"image\": ...} per line, image optional, relative to the file) or text (one prompt per line); or images, labels and classPrompts"
    ),
    .optional("images", .path(mustExist: true), "instead of path: labelled IDX images ([N, H, W] bytes, e.g. Fashion-MNIST), each captioned by its class's prompt"),
    .optional("labels", .path(mustExist: true), "with images: the IDX labels file (N bytes)"),
    .optional("classPrompts", .strings, "with images: the prompt of each class, in label order (\"a t-shirt\", \"a trouser\", ...)"),
    .optional("count", .integer(1...Int.max), "with images: use the first count images only (each is encoded once when the run is built)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource
  {
    let location = entry.has("path") ? "\(entry.path).path" : "\(entry.path).images"
    guard let teacher = context.textToImage else {
      throw DistillError.invalidValue(
        location: location,
        expected:
          "a text-to-image teacher (a Stable-Diffusion-layout folder) or generator (a new \"stable-diffusion\" network) whose text encoder embeds the prompts",
        found: context.teacher.map { "the teacher \"\($0.summary)\", which takes no prompts" }
          ?? "no teacher")
    }
    guard let sampleShape = teacher.sampleShape else {
      throw DistillError.invalidValue(
        location: location, expected: "a teacher whose UNet config has sample_size (the latent size)", found: "none")
    }
    guard entry.has("path") != entry.has("images") else {
      throw DistillError.invalidValue(
        location: entry.path, expected: "exactly one of path (a captions file) and images (labelled IDX images)",
        found: entry.has("path") ? "both" : "neither")
    }
    if entry.has("images") { return try ClassCaptions.make(entry, teacher: teacher, sampleShape: sampleShape) }
    let path = entry.path("path")
    for key in ["labels", "classPrompts", "count"] where entry.has(key) {
      throw DistillError.invalidValue(
        location: "\(entry.path).\(key)", expected: "nothing with path (\(key) goes with images)", found: "a value")
    }
    let captions = try Caption.read(path)
    let embeddings = embed(captions.map(\.prompt), teacher: teacher, source: path)
    let images = try captions.compactMap(\.image).map {
      try image($0, teacher: teacher, latentShape: sampleShape)
    }
    let latents = images.isEmpty ? nil : encode(Tensor.stack(images), teacher: teacher)
    return CaptionSource(
      prompts: captions.map(\.prompt), embeddings: embeddings, latents: latents, sampleShape: sampleShape)
  }

  /// The embeddings of `prompts`, warning about each prompt longer than the text encoder's
  /// positions (naming `source`).
  static func embed(_ prompts: [String], teacher: TextToImageDenoiser, source: String) -> Tensor {
    let (embeddings, truncated) = teacher.encode(prompts: prompts)
    for (prompt, dropped) in zip(prompts, truncated) where dropped > 0 {
      FileHandle.standardError.write(
        Data(
          "warning: \(source): the prompt \"\(prompt)\" is longer than the text encoder's \(teacher.promptConditioning.length) positions; its last \(dropped) tokens were dropped\n"
            .utf8))
    }
    return embeddings
  }

  /// The VAE's latents of `images` `[N, C, H, W]`, 256 at a time, without gradients.
  static func encode(_ images: Tensor, teacher: TextToImageDenoiser) -> Tensor {
    let n = images.shape[0]
    let parts = stride(from: 0, to: n, by: 256).map { start in
      withoutGradients { teacher.pipeline.vae.latents(from: images.sliced(axis: 0, start..<min(start + 256, n))) }
        .detached()
    }
    return parts.count == 1 ? parts[0] : Tensor.concat(parts, axis: 0)
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
