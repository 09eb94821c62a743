import DistillCore
import DistillDiffusion
import DistillPipeline
import ImageIO

/// The `captions` source over labelled IDX images (Fashion-MNIST): image `i` is captioned by
/// the prompt of its class, `classPrompts[labels[i]]`; the prompts are the source's prompts
/// (evaluation asks row `i` for prompt `i mod classes`, so for class `i mod classes`) and the
/// rows carry their class as a label.
enum ClassCaptions {
  static func make(_ entry: ComponentEntry, teacher: TextToImageDenoiser, sampleShape: [Int]) throws -> CaptionSource {
    for key in ["labels", "classPrompts"] where !entry.has(key) {
      throw DistillError.invalidValue(
        location: "\(entry.path).\(key)", expected: key == "labels" ? "an IDX labels file for images" : "a prompt per class",
        found: "nothing")
    }
    let imagesPath = entry.path("images")
    let labelsPath = entry.path("labels")
    let images = try IDXArray.read(imagesPath)
    guard images.elementType == .unsignedByte, images.shape.count == 3 else {
      throw DistillError.malformed(
        path: imagesPath,
        detail: "holds \(images.elementType) values of shape \(images.shape); expected [N, H, W] unsigned bytes")
    }
    let labelFile = try IDXArray.read(labelsPath)
    guard labelFile.elementType == .unsignedByte, labelFile.shape == [images.shape[0]] else {
      throw DistillError.malformed(
        path: labelsPath,
        detail:
          "holds \(labelFile.elementType) values of shape \(labelFile.shape); expected [\(images.shape[0])] unsigned bytes, one label per image of \(imagesPath)"
      )
    }
    let count = min(entry.optionalInt("count") ?? images.shape[0], images.shape[0])
    let labels = labelFile.values.prefix(count).map { Int($0) }
    let prompts = entry.strings("classPrompts")
    if let largest = labels.max(), largest >= prompts.count {
      throw DistillError.invalidValue(
        location: "\(entry.path).classPrompts", expected: "a prompt for each class 0...\(largest) of \(labelsPath)",
        found: "\(prompts.count) prompts")
    }
    let vae = teacher.pipeline.vae.config
    let side = sampleShape[1] << (vae.blockOutChannels.count - 1)
    let (height, width) = (images.shape[1], images.shape[2])
    guard vae.inChannels == 1, height == side, width == side else {
      throw DistillError.invalidValue(
        location: "\(entry.path).images",
        expected: "grey images of \(side)x\(side) for the VAE (\(vae.inChannels) channels; latents \(sampleShape))",
        found: "grey images of \(width)x\(height)")
    }
    let pixels = Tensor(
      shape: [count, 1, height, width], scalars: images.values.prefix(count * height * width).map { $0 / 127.5 - 1 })
    return CaptionSource(
      prompts: prompts, embeddings: CaptionsData.embed(prompts, teacher: teacher, source: "\(entry.path).classPrompts"),
      rowPrompts: labels, latents: CaptionsData.encode(pixels, teacher: teacher), sampleShape: sampleShape,
      classPrompts: true)
  }
}
