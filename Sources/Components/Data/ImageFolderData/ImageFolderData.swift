import DistillCore
import DistillPipeline
import Foundation
import ImageIO

/// The images of a folder (PNG and JPEG, searched recursively), each resized so that its
/// shorter side is `size` and centre-cropped to `[channels, size, size]` in [-1, 1] (3: RGB,
/// grey repeated; 1: grey, colour by luma), held in memory.
/// With `labels`, an image's class is the index of its top-level subfolder in sorted order.
/// Each row of a batch is an image drawn uniformly from its row's stream (with replacement),
/// optionally flipped left to right.
public final class ImageFolderSource: FiniteDataSource {
  public let images: Tensor
  public let labels: [Int]?
  public let classNames: [String]
  public let flip: Bool
  /// Files that could not be read and were skipped (`onError: "skip"`), with the reason.
  public let skipped: [(path: String, reason: String)]
  public var sampleShape: [Int] { Array(images.shape.dropFirst()) }

  /// The image files under `folder`: extensions png, jpg and jpeg (any case), sorted by
  /// their path relative to `folder`; hidden files and folders are left out.
  public static func imageFiles(in folder: String) throws -> [String] {
    guard let walker = FileManager.default.enumerator(atPath: folder) else {
      throw DistillError.io(path: folder, reason: "cannot list the folder")
    }
    var files: [String] = []
    while let relative = walker.nextObject() as? String {
      let name = (relative as NSString).lastPathComponent
      if name.hasPrefix(".") {
        walker.skipDescendants()
        continue
      }
      if ["png", "jpg", "jpeg"].contains((name as NSString).pathExtension.lowercased()) { files.append(relative) }
    }
    return files.sorted()
  }

  /// Loads the folder. - Throws: ``DistillError`` naming the folder when it holds no images,
  /// an unreadable image's path when `skipUnreadable` is false, and an image at the top level
  /// when `labels` asks for classes from subfolders.
  public init(
    folder: String, size: Int, channels: Int = 3, labels: Bool, flip: Bool, skipUnreadable: Bool, location: String
  ) throws {
    precondition(channels == 1 || channels == 3, "images are read as grey or RGB")
    let files = try Self.imageFiles(in: folder)
    guard !files.isEmpty else {
      throw DistillError.invalidValue(
        location: "\(location): \(folder)", expected: "a folder holding PNG or JPEG images (searched recursively)",
        found: "none")
    }
    var classNames: [String] = []
    if labels {
      if let loose = files.first(where: { !$0.contains("/") }) {
        throw DistillError.invalidValue(
          location: "\(location): \(folder)/\(loose)",
          expected: "every image inside a class subfolder (labels: true takes the class from the top-level subfolder)",
          found: "an image at the top level")
      }
      classNames = Array(Set(files.map { String($0.split(separator: "/")[0]) })).sorted()
    }
    var planes: [Tensor] = []
    var classes: [Int] = []
    var skipped: [(String, String)] = []
    for relative in files {
      let path = (folder as NSString).appendingPathComponent(relative)
      do {
        let image = channels == 1 ? try ImageFile.readGrey(path) : try ImageFile.readRGB(path)
        planes.append(try ImageResizing.squareCrop(image, size: size))
        if labels { classes.append(classNames.firstIndex(of: String(relative.split(separator: "/")[0]))!) }
      } catch let error as DistillError {
        guard skipUnreadable else {
          throw DistillError.invalidValue(
            location: location, expected: "readable images (or \"onError\": \"skip\")", found: "\(error)")
        }
        skipped.append((path, "\(error)"))
      }
    }
    guard !planes.isEmpty else {
      throw DistillError.invalidValue(
        location: "\(location): \(folder)", expected: "at least one readable image",
        found: "\(skipped.count) unreadable images (first: \(skipped.first?.1 ?? ""))")
    }
    images = Tensor.stack(planes.map { ImageFile.toSignedUnit($0) })
    self.labels = labels ? classes : nil
    self.classNames = classNames
    self.flip = flip
    self.skipped = skipped
  }

  public var labelNames: [String]? { labels == nil ? nil : classNames }
  public var count: Int { images.shape[0] }

  public func rows(_ indices: [Int]) -> Batch {
    Batch(samples: images.gatheringRows(indices), labels: labels.map { labels in indices.map { labels[$0] } })
  }

  public func next(_ count: Int, using rng: inout RandomGenerator) throws -> Batch {
    let indices = rng.integers(count: count, in: 0..<images.shape[0])
    let flips = flip ? rng.integers(count: count, in: 0..<2) : [Int](repeating: 0, count: count)
    let shape = sampleShape
    let width = shape[2]
    let per = shape.reduce(1, *)
    let batch = images.withUnsafeBufferPointer { source in
      Tensor(shape: [count] + shape) { out in
        for (row, index) in indices.enumerated() {
          let from = source.baseAddress! + index * per
          let to = out.baseAddress! + row * per
          if flips[row] == 0 {
            to.update(from: from, count: per)
          } else {
            for line in 0..<(per / width) {
              for x in 0..<width { to[line * width + x] = from[line * width + width - 1 - x] }
            }
          }
        }
      }
    }
    return Batch(samples: batch, labels: labels.map { labels in indices.map { labels[$0] } })
  }
}

/// Resampling for loading images at the manifest's size.
public enum ImageResizing {
  /// `image` `[C, H, W]` resized so that its shorter side is `size` (antialiased triangle
  /// filter, as PIL's bilinear resize), then centre-cropped to `[C, size, size]`.
  public static func squareCrop(_ image: Tensor, size: Int) -> Tensor {
    let (height, width) = (image.shape[1], image.shape[2])
    let scale = Double(size) / Double(min(height, width))
    let newHeight = max(size, Int((Double(height) * scale).rounded()))
    let newWidth = max(size, Int((Double(width) * scale).rounded()))
    let resized = resize(image, height: newHeight, width: newWidth)
    let top = (newHeight - size) / 2
    let left = (newWidth - size) / 2
    return resized.sliced(axis: 1, top..<(top + size)).sliced(axis: 2, left..<(left + size))
  }

  /// `image` `[C, H, W]` resampled to `[C, height, width]` with a triangle filter whose
  /// support widens with the downscale factor (so downscaling averages, not aliases).
  public static func resize(_ image: Tensor, height: Int, width: Int) -> Tensor {
    let (channels, inHeight, inWidth) = (image.shape[0], image.shape[1], image.shape[2])
    if inHeight == height && inWidth == width { return image }
    let rows = weights(from: inHeight, to: height)
    let columns = weights(from: inWidth, to: width)
    let source = image.scalars
    var horizontal = [Float](repeating: 0, count: channels * inHeight * width)
    for c in 0..<channels {
      for y in 0..<inHeight {
        let line = (c * inHeight + y) * inWidth
        for x in 0..<width {
          var sum: Float = 0
          for (i, w) in columns[x] { sum += w * source[line + i] }
          horizontal[(c * inHeight + y) * width + x] = sum
        }
      }
    }
    return Tensor(shape: [channels, height, width]) { out in
      for c in 0..<channels {
        for y in 0..<height {
          for x in 0..<width {
            var sum: Float = 0
            for (i, w) in rows[y] { sum += w * horizontal[(c * inHeight + i) * width + x] }
            out[(c * height + y) * width + x] = sum
          }
        }
      }
    }
  }

  /// For each output index, the input indices and normalised weights of a triangle filter.
  static func weights(from input: Int, to output: Int) -> [[(Int, Float)]] {
    let scale = Double(input) / Double(output)
    let support = max(1, scale)
    return (0..<output).map { o in
      let centre = (Double(o) + 0.5) * scale
      let low = max(0, Int((centre - support).rounded(.down)))
      let high = min(input - 1, Int((centre + support).rounded(.up)))
      var taps: [(Int, Float)] = []
      var total = 0.0
      for i in low...high {
        let w = max(0, 1 - abs((Double(i) + 0.5 - centre) / support))
        if w > 0 {
          taps.append((i, Float(w)))
          total += w
        }
      }
      return taps.map { ($0.0, Float(Double($0.1) / total)) }
    }
  }
}

/// What an image-folder source does with a file it cannot read.
public enum UnreadableImagePolicy: String, CaseIterable, Sendable {
  /// Stop with the file's path.
  case stop
  /// Skip it (the count and the first path are printed).
  case skip
}

public enum ImageFolderData: DataComponent {
  public static let id = "image-folder"
  public static let summary =
    "PNG/JPEG images of a folder (recursive), resized and centre-cropped to [channels, size, size] in [-1, 1]; classes from subfolders"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("path", .path(mustExist: true), "the folder, relative to the manifest"),
    ParameterSpec("size", .integer(8...1024), "the side the images are resized (shorter side) and centre-cropped to"),
    ParameterSpec(
      "channels", .integer(1...3), default: .number(3), "3: RGB (grey images repeated), 1: grey (colour by luma, as PIL's convert(\"L\"))"),
    ParameterSpec("labels", .bool, default: .bool(false), "take class labels from the top-level subfolders"),
    ParameterSpec("flip", .bool, default: .bool(false), "flip each drawn image left to right with probability 1/2"),
    .choice(
      "onError", UnreadableImagePolicy.self, default: .stop,
      "an unreadable image: stop with its path, or skip it (the count and the first path are printed)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource {
    guard entry.int("channels") != 2 else {
      throw DistillError.invalidValue(location: "\(entry.path).channels", expected: "1 or 3", found: "2")
    }
    let source = try ImageFolderSource(
      folder: entry.path("path"), size: entry.int("size"), channels: entry.int("channels"), labels: entry.bool("labels"),
      flip: entry.bool("flip"),
      skipUnreadable: entry.choice("onError") as UnreadableImagePolicy == .skip, location: entry.path)
    if let first = source.skipped.first {
      FileHandle.standardError.write(
        Data(
          "warning: \(entry.path): skipped \(source.skipped.count) unreadable images of \(source.skipped.count + source.images.shape[0]); first: \(first.reason)\n"
            .utf8))
    }
    return source
  }
}
