import CImageSupport
import DistillCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reading and writing PNG and JPEG images as float tensors.
///
/// Images are `[C, H, W]` float32 tensors in `[0, 1]`, channels first, where `C` is
/// 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA). Models work in `[-1, 1]`: see
/// ``toSignedUnit(_:)`` and ``fromSignedUnit(_:)``.
///
/// Decoding goes through libpng and libjpeg inside a small C layer (`CImageSupport`) that
/// catches their `longjmp` error paths, so a corrupt, truncated or unsupported file is a
/// thrown ``DistillError`` naming the file, never a crash.
public enum ImageFile {
  /// The largest width or height ``read(_:)`` accepts; larger images are refused before
  /// any pixel memory is allocated.
  public static let maximumSide = Int(DISTILL_IMAGE_MAX_SIDE)
  /// The most pixels (width × height) ``read(_:)`` accepts, 2^26 (8192 × 8192): checked from
  /// the header before any pixel memory is allocated.
  public static let maximumPixels = Int(DISTILL_IMAGE_MAX_PIXELS)

  /// What ``readRGB(_:alpha:)`` and ``rgb(_:alpha:)`` do with an alpha channel.
  public enum AlphaHandling: Sendable, Equatable {
    /// Ignore alpha and keep the stored colour, like PIL's `Image.convert("RGB")`.
    case drop
    /// Blend over a uniform background of this value in `[0, 1]`: `c * a + background * (1 - a)`.
    case composite(over: Float)
  }

  // MARK: Reading

  /// Reads the PNG or JPEG at `path` as a `[C, H, W]` tensor in `[0, 1]`.
  ///
  /// The format is recognised by the file's first bytes, not its extension.
  /// - PNG: every colour type and bit depth, interlaced or not. Palettes are expanded to
  ///   RGB, and a `tRNS` chunk becomes an alpha channel, so `C` is 1 (gray), 2 (gray + alpha),
  ///   3 (RGB) or 4 (RGBA). Gray of 1, 2 or 4 bits is scaled to the full range; 16-bit
  ///   samples keep their precision (`v / 65535`), 8-bit ones are `v / 255`.
  /// - JPEG: grayscale (`C` = 1) or YCbCr/RGB (`C` = 3). CMYK and YCCK are refused, and
  ///   so are files with corrupt entropy data or a premature end.
  ///
  /// - Throws: ``DistillError/io(path:reason:)`` when the file cannot be opened or read, and
  ///   ``DistillError/malformed(path:detail:)`` when it is empty, not a PNG or JPEG, corrupt,
  ///   truncated, unsupported, larger than ``maximumSide`` on a side or than ``maximumPixels``.
  public static func read(_ path: String) throws -> Tensor {
    switch try sniff(path) {
    case .png: return try decode(path, format: .png)
    case .jpeg: return try decode(path, format: .jpeg)
    }
  }

  /// Reads the image at `path` as a `[3, H, W]` RGB tensor in `[0, 1]`: gray is repeated
  /// into three channels, palettes are expanded, and alpha is handled as `alpha` says
  /// (dropped by default, like PIL's `convert("RGB")`).
  public static func readRGB(_ path: String, alpha: AlphaHandling = .drop) throws -> Tensor {
    try rgb(read(path), alpha: alpha)
  }

  /// Reads the image at `path` as a `[1, H, W]` grey tensor in `[0, 1]`: gray as it is, colour
  /// by ITU-R 601-2 luma (`0.299 R + 0.587 G + 0.114 B`, PIL's `convert("L")`), alpha as in
  /// ``readRGB(_:alpha:)``.
  public static func readGrey(_ path: String, alpha: AlphaHandling = .drop) throws -> Tensor {
    let image = try read(path)
    let rgb = try rgb(image, alpha: alpha)
    guard image.shape[0] > 2 else { return rgb.sliced(axis: 0, 0..<1) }
    let (height, width) = (rgb.shape[1], rgb.shape[2])
    let plane = height * width
    return rgb.withUnsafeBufferPointer { source in
      Tensor(shape: [1, height, width]) { out in
        for i in 0..<plane { out[i] = 0.299 * source[i] + 0.587 * source[plane + i] + 0.114 * source[2 * plane + i] }
      }
    }
  }

  /// Converts a `[C, H, W]` image with `C` in 1...4 to `[3, H, W]` RGB; see ``readRGB(_:alpha:)``.
  public static func rgb(_ image: Tensor, alpha: AlphaHandling = .drop) throws -> Tensor {
    let (channels, height, width) = try imageShape(image, location: "image")
    let plane = height * width
    return image.withUnsafeBufferPointer { source in
      Tensor(shape: [3, height, width]) { out in
        for c in 0..<3 {
          let sourceChannel = channels >= 3 ? c : 0
          for i in 0..<plane {
            var value = source[sourceChannel * plane + i]
            if case .composite(let background) = alpha, channels == 2 || channels == 4 {
              let a = source[(channels - 1) * plane + i]
              value = value * a + background * (1 - a)
            }
            out[c * plane + i] = value
          }
        }
      }
    }
  }

  // MARK: Model space

  /// Maps an image from `[0, 1]` to the `[-1, 1]` range models work in: `2x - 1`.
  public static func toSignedUnit(_ image: Tensor) -> Tensor {
    map(image) { $0 * 2 - 1 }
  }

  /// Maps model output from `[-1, 1]` back to `[0, 1]`: `(x + 1) / 2`, clamped to `[0, 1]`
  /// (NaN becomes 0).
  public static func fromSignedUnit(_ image: Tensor) -> Tensor {
    map(image) { clampUnit(($0 + 1) / 2) }
  }

  // MARK: Writing

  /// Writes a `[C, H, W]` image in `[0, 1]` (`C` = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) as a
  /// PNG of 8 or 16 bits per sample. Values are clamped to `[0, 1]` (NaN becomes 0) and
  /// rounded to the nearest level, so reading the file back gives `round(v * max) / max`.
  ///
  /// The file is written under a temporary name in the same folder, synced and then renamed
  /// over `path`, so a failure never leaves a partial file at `path`.
  public static func writePNG(_ image: Tensor, to path: String, bitDepth: Int = 8) throws {
    let (channels, height, width) = try imageShape(image, location: "image")
    guard bitDepth == 8 || bitDepth == 16 else {
      throw DistillError.invalidValue(location: "bitDepth", expected: "8 or 16", found: "\(bitDepth)")
    }
    guard height <= Int(Int32.max), width <= Int(Int32.max) else {
      throw DistillError.invalidValue(location: "image", expected: "PNG sides below 2^31", found: "\(width)x\(height)")
    }
    let bytes = interleave(image, channels: channels, plane: height * width, bitDepth: bitDepth)
    try writeAtomically(to: path) { temporary, message, messageLength in
      distill_png_write(
        temporary, bytes, UInt32(width), UInt32(height), UInt32(channels), UInt32(bitDepth), message, messageLength)
    }
  }

  /// The bytes of the PNG ``writePNG(_:to:bitDepth:)`` would write, without a file (for
  /// TensorBoard image summaries).
  public static func encodePNG(_ image: Tensor, bitDepth: Int = 8) throws -> [UInt8] {
    let (channels, height, width) = try imageShape(image, location: "image")
    guard bitDepth == 8 || bitDepth == 16 else {
      throw DistillError.invalidValue(location: "bitDepth", expected: "8 or 16", found: "\(bitDepth)")
    }
    let bytes = interleave(image, channels: channels, plane: height * width, bitDepth: bitDepth)
    var message = [CChar](repeating: 0, count: 256)
    var out: UnsafeMutablePointer<UInt8>?
    var length = 0
    let status = distill_png_encode(
      bytes, UInt32(width), UInt32(height), UInt32(channels), UInt32(bitDepth), &out, &length, &message, message.count)
    guard status == 0, let out else {
      throw DistillError.invalidValue(
        location: "image", expected: "an image PNG can hold", found: String(cString: message))
    }
    defer { free(out) }
    return Array(UnsafeBufferPointer(start: out, count: length))
  }

  /// Writes a `[C, H, W]` image in `[0, 1]` (`C` = 1 gray or 3 RGB) as a baseline JPEG of
  /// `quality` 1...100 without chroma subsampling (4:4:4). Values are clamped and rounded to
  /// 8 bits as in ``writePNG(_:to:bitDepth:)``, and the write is atomic in the same way.
  public static func writeJPEG(_ image: Tensor, to path: String, quality: Int = 95) throws {
    let (channels, height, width) = try imageShape(image, location: "image")
    guard channels == 1 || channels == 3 else {
      throw DistillError.invalidValue(
        location: "image", expected: "1 (gray) or 3 (RGB) channels for JPEG", found: "\(channels)")
    }
    guard (1...100).contains(quality) else {
      throw DistillError.invalidValue(location: "quality", expected: "1...100", found: "\(quality)")
    }
    guard height <= 65500, width <= 65500 else {
      throw DistillError.invalidValue(
        location: "image", expected: "at most 65500 pixels a side for JPEG", found: "\(width)x\(height)")
    }
    let bytes = interleave(image, channels: channels, plane: height * width, bitDepth: 8)
    try writeAtomically(to: path) { temporary, message, messageLength in
      distill_jpeg_write(
        temporary, bytes, UInt32(width), UInt32(height), UInt32(channels), Int32(quality), message, messageLength)
    }
  }

  // MARK: Implementation

  enum Format { case png, jpeg }

  /// The format of the file at `path`, from its first bytes.
  static func sniff(_ path: String) throws -> Format {
    guard let file = fopen(path, "rb") else {
      throw DistillError.io(path: path, reason: "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var head = [UInt8](repeating: 0, count: 8)
    let count = fread(&head, 1, head.count, file)
    if count < head.count && ferror(file) != 0 {
      throw DistillError.io(path: path, reason: "cannot read: \(String(cString: strerror(errno)))")
    }
    if count == 0 { throw DistillError.malformed(path: path, detail: "empty file, not an image") }
    if count == 8 && head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
    if count >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF { return .jpeg }
    throw DistillError.malformed(path: path, detail: "not a PNG or JPEG file (unrecognised signature)")
  }

  static func decode(_ path: String, format: Format) throws -> Tensor {
    var image = distill_image()
    defer { distill_image_free(&image) }
    var message = [CChar](repeating: 0, count: 512)
    let status: Int32 =
      switch format {
      case .png: distill_png_read(path, &image, &message, message.count)
      case .jpeg: distill_jpeg_read(path, &image, &message, message.count)
      }
    guard status == 0, let pixels = image.pixels else {
      let detail = "\(format == .png ? "PNG" : "JPEG"): \(cString(message))"
      if status == Int32(DISTILL_IMAGE_IO_ERROR) { throw DistillError.io(path: path, reason: detail) }
      throw DistillError.malformed(path: path, detail: detail)
    }
    let channels = Int(image.channels), height = Int(image.height), width = Int(image.width)
    let plane = height * width
    if image.bit_depth == 16 {
      return Tensor(shape: [channels, height, width]) { out in
        for i in 0..<plane {
          for c in 0..<channels {
            let k = 2 * (i * channels + c)
            out[c * plane + i] = Float(UInt16(pixels[k]) << 8 | UInt16(pixels[k + 1])) / 65535
          }
        }
      }
    }
    let levels = (0..<256).map { Float($0) / 255 }
    return Tensor(shape: [channels, height, width]) { out in
      for i in 0..<plane {
        for c in 0..<channels { out[c * plane + i] = levels[Int(pixels[i * channels + c])] }
      }
    }
  }

  /// `(C, H, W)` of a `[C, H, W]` image with `C` in 1...4 and nonzero sides.
  static func imageShape(_ image: Tensor, location: String) throws -> (Int, Int, Int) {
    let shape = image.shape
    guard shape.count == 3, (1...4).contains(shape[0]), shape[1] > 0, shape[2] > 0 else {
      throw DistillError.invalidValue(
        location: location, expected: "[C, H, W] with C in 1...4 and H, W > 0", found: "shape \(shape)")
    }
    return (shape[0], shape[1], shape[2])
  }

  /// Interleaved (`HWC`) samples quantised to `bitDepth` bits; 16-bit samples most significant byte first.
  static func interleave(_ image: Tensor, channels: Int, plane: Int, bitDepth: Int) -> [UInt8] {
    image.withUnsafeBufferPointer { source in
      if bitDepth == 8 {
        return [UInt8](unsafeUninitializedCapacity: plane * channels) { out, count in
          for i in 0..<plane {
            for c in 0..<channels { out[i * channels + c] = UInt8(quantise(source[c * plane + i], levels: 255)) }
          }
          count = plane * channels
        }
      }
      return [UInt8](unsafeUninitializedCapacity: 2 * plane * channels) { out, count in
        for i in 0..<plane {
          for c in 0..<channels {
            let v = UInt16(quantise(source[c * plane + i], levels: 65535))
            out[2 * (i * channels + c)] = UInt8(v >> 8)
            out[2 * (i * channels + c) + 1] = UInt8(v & 0xFF)
          }
        }
        count = 2 * plane * channels
      }
    }
  }

  @inline(__always) static func clampUnit(_ v: Float) -> Float {
    v.isNaN ? 0 : Swift.min(Swift.max(v, 0), 1)
  }

  @inline(__always) static func quantise(_ v: Float, levels: Float) -> Int {
    Int((clampUnit(v) * levels).rounded())
  }

  static func map(_ image: Tensor, _ transform: (Float) -> Float) -> Tensor {
    image.withUnsafeBufferPointer { source in
      Tensor(shape: image.shape) { out in
        for i in 0..<source.count { out[i] = transform(source[i]) }
      }
    }
  }

  static func cString(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
  }
  /// Runs the C writer `write` on a temporary path next to `path` (``AtomicFileWriter``), so a
  /// failure never leaves a partial file at `path`; a failure throws ``DistillError/io(path:reason:)``.
  static func writeAtomically(
    to path: String, _ write: (String, UnsafeMutablePointer<CChar>, Int) -> Int32
  ) throws {
    try AtomicFileWriter.replace(path) { temporary in
      var message = [CChar](repeating: 0, count: 512)
      let status = message.withUnsafeMutableBufferPointer { write(temporary, $0.baseAddress!, $0.count) }
      guard status == 0 else { throw DistillError.io(path: path, reason: cString(message)) }
    }
  }
}
