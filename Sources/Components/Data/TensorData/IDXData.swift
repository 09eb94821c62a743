import DistillCore
import DistillPipeline
import ImageIO

/// A data set in the IDX files of the MNIST family (MNIST, Fashion-MNIST, KMNIST; gzip or
/// plain): images `[N, H, W]` of bytes become `[N, 1, H, W]` in [-1, 1], and a labels file of
/// `N` class indices labels them. Rows are drawn as ``TensorSource`` draws them.
public enum IDXData: DataComponent {
  public static let id = "idx"
  public static let summary =
    "grey images and class labels from the IDX files of the MNIST family (gzip or plain), as [N, 1, H, W] in [-1, 1]"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("images", .path(mustExist: true), "the images file ([N, H, W] unsigned bytes), e.g. train-images-idx3-ubyte.gz"),
    .optional("labels", .path(mustExist: true), "the labels file (N unsigned bytes), e.g. train-labels-idx1-ubyte.gz"),
    .optional("classNames", .strings, "a name for each class index, in order (default: \"0\", \"1\", ...)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource {
    let imagesPath = entry.path("images")
    let images = try IDXArray.read(imagesPath)
    guard images.elementType == .unsignedByte, images.shape.count == 3 else {
      throw DistillError.malformed(
        path: imagesPath, detail: "holds \(images.elementType) values of shape \(images.shape); expected [N, H, W] unsigned bytes")
    }
    let samples = Tensor(shape: [images.shape[0], 1, images.shape[1], images.shape[2]], scalars: images.values.map { $0 / 127.5 - 1 })
    var labels: [Int]?
    if let labelsPath = entry.optionalPath("labels") {
      let file = try IDXArray.read(labelsPath)
      guard file.elementType == .unsignedByte, file.shape == [images.shape[0]] else {
        throw DistillError.malformed(
          path: labelsPath,
          detail: "holds \(file.elementType) values of shape \(file.shape); expected [\(images.shape[0])] unsigned bytes, one label per image of \(imagesPath)")
      }
      labels = file.values.map { Int($0) }
    }
    var names: [String]?
    if entry.has("classNames") {
      names = entry.strings("classNames")
      guard let labels else {
        throw DistillError.invalidValue(location: "\(entry.path).classNames", expected: "labels to name", found: "no labels file")
      }
      let largest = labels.max() ?? 0
      guard names!.count > largest else {
        throw DistillError.invalidValue(
          location: "\(entry.path).classNames", expected: "a name for each class 0...\(largest)", found: "\(names!.count) names")
      }
    }
    return TensorSource(samples: samples, labels: labels, labelNames: names)
  }
}
