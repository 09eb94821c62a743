import DistillCore
import FuzzSupport
import ImageIO

/// libFuzzer entry for `ImageFile.read`, run twice by scripts/fuzz.sh: target `png` seeds it with
/// PNG files and the PNG dictionary, `jpeg` with JPEG files and the JPEG dictionary (the format
/// is sniffed, so mutations into the other format or none are covered too).
///
/// An accepted image must have a valid shape within the documented limits and samples in
/// [0, 1], and must convert to RGB.
let scratch = ScratchFile(name: "input.image")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  scratch.write(UnsafeRawBufferPointer(start: data, count: count))
  let image: Tensor
  do {
    image = try ImageFile.read(scratch.path)
  } catch is DistillError {
    return 0
  } catch {
    fatalError("not a DistillError: \(error)")
  }
  let shape = image.shape
  precondition(shape.count == 3 && (1...4).contains(shape[0]), "shape \(shape)")
  precondition(shape[1] <= ImageFile.maximumSide && shape[2] <= ImageFile.maximumSide, "shape \(shape)")
  precondition(shape[1] * shape[2] <= ImageFile.maximumPixels, "shape \(shape)")
  image.withUnsafeBufferPointer { samples in
    precondition(samples.allSatisfy { $0 >= 0 && $0 <= 1 }, "a sample outside [0, 1]")
  }
  let rgb = try! ImageFile.rgb(image, alpha: .composite(over: 0.5))
  precondition(rgb.shape == [3, shape[1], shape[2]])
  return 0
}

@main enum FuzzImage {
  static func main() { runFuzzer(fuzzOneInput) }
}
