import BuiltInComponents
import DistillCore
import Foundation
import ImageFolderData
import ImageIO
import ShapesData
import TensorData
import Testing

@testable import DistillPipeline

/// A loss that asks nothing of the data, so that any data entry assembles.
private final class ZeroTerm: LossTerm {
  func loss(_ context: StepContext) throws -> Tensor { Tensor([0]).sum() }
}

private enum ZeroLoss: LossComponent {
  static let id = "test-zero-loss"
  static let summary = "zero"
  static let parameters: [ParameterSpec] = []
  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm { ZeroTerm() }
}

private var registry: ComponentRegistry { .standard(adding: [ZeroLoss.self]) }

/// Builds the data entry `data` through a manifest, as `pipeline run` does.
private func buildData(_ data: String, in folder: String) throws -> any DataSource {
  let text = """
    {"generator": {"type": "mlp"}, "losses": [{"type": "test-zero-loss"}], "data": \(data)}
    """
  let manifest = try Manifest.decode(
    JSONValue.parse(Data(text.utf8), source: "m"), source: folder + "/m.json", baseDirectory: folder, fallbackName: "m",
    registry: registry)
  return try AssembledPipeline.assemble(manifest, registry: registry).data!
}

/// The problems a manifest with data entry `data` is refused with.
private func dataProblem(_ data: String, in folder: String) -> String {
  do {
    _ = try buildData(data, in: folder)
    return "accepted"
  } catch {
    return "\(error)"
  }
}

private func number(_ value: JSONValue) -> Double {
  if case .number(let x) = value { return x }
  Issue.record("not a number: \(value)")
  return .nan
}

private func draw(_ source: any DataSource, _ count: Int, seed: UInt64 = 1) throws -> Batch {
  var rng = RandomGenerator(seed: seed)
  return try source.next(count, using: &rng)
}

@Suite struct ShapesDataTests {
  @Test func classesHaveTheirColourAndShapeAndDrawsRepeat() throws {
    let source = ShapesSource(size: 16, classes: 8)
    let batch = try draw(source, 400)
    let images = try #require(batch.samples)
    let labels = try #require(batch.labels)
    #expect(images.shape == [400, 3, 16, 16])
    #expect(images.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })
    #expect(Set(labels) == Set(0..<8), "every class is drawn")
    // Each image's brightest pixel has its class's colour (shapes cover at least a few pixels).
    let per = 3 * 16 * 16
    let values = images.scalars
    for (row, label) in labels.enumerated() {
      let planes = (0..<3).map { Array(values[(row * per + $0 * 256)..<(row * per + ($0 + 1) * 256)]) }
      let brightest = (0..<256).max { a, b in planes.map { $0[a] }.reduce(0, +) < planes.map { $0[b] }.reduce(0, +) }!
      let colour = ShapesSource.palette[label]
      #expect(abs(planes[0][brightest] - colour.0) < 1e-5 && abs(planes[2][brightest] - colour.2) < 1e-5, "row \(row)")
    }
    // The same stream draws the same images.
    #expect(try draw(source, 20, seed: 9).samples == draw(source, 20, seed: 9).samples)
    // A square covers more of its box than a disc, a disc more than a triangle.
    let area = { (shape: Int) in
      (0..<100).map { y in (0..<100).filter { x in
        ShapesSource.inside(shape, x: Float(x) / 100, y: Float(y) / 100, c: (0.5, 0.5), r: 0.3) }.count }.reduce(0, +)
    }
    #expect(area(0) > area(1) && area(1) > area(2) && area(2) > 0 && area(3) > 0)
  }

  @Test func manifestParametersAreChecked() {
    let folder = temporaryFolder()
    #expect(dataProblem(#"{"type": "shapes", "classes": 9}"#, in: folder).contains("data.classes"))
    #expect(dataProblem(#"{"type": "shapes", "size": 4}"#, in: folder).contains("data.size"))
  }
}

@Suite struct ImageFolderDataTests {
  /// A folder with class subfolders `a` (3 red images) and `b` (2 blue), 20 x 12 pixels.
  func makeFolder() throws -> String {
    let folder = temporaryFolder()
    for (name, count, colour) in [("a", 3, [Float(1), 0, 0]), ("b", 2, [0, 0, 1])] {
      try FileManager.default.createDirectory(atPath: "\(folder)/images/\(name)", withIntermediateDirectories: true)
      for i in 0..<count {
        let image = Tensor(shape: [3, 12, 20]) { out in
          for c in 0..<3 { for p in 0..<240 { out[c * 240 + p] = colour[c] } }
        }
        try ImageFile.writePNG(image, to: "\(folder)/images/\(name)/\(i).png")
      }
    }
    return folder
  }

  @Test func loadsResizesCropsAndLabelsFromSubfolders() throws {
    let folder = try makeFolder()
    let source = try #require(try buildData(#"{"type": "image-folder", "path": "images", "size": 8, "labels": true}"#, in: folder) as? ImageFolderSource)
    #expect(source.images.shape == [5, 3, 8, 8])
    #expect(source.classNames == ["a", "b"])
    #expect(source.labels == [0, 0, 0, 1, 1])
    let batch = try draw(source, 50)
    let samples = try #require(batch.samples).scalars
    for (row, label) in try #require(batch.labels).enumerated() {
      // A uniform image stays uniform: red (1, -1, -1) or blue (-1, -1, 1) in [-1, 1].
      let red = samples[row * 192], blue = samples[row * 192 + 128]
      #expect(label == 0 ? (red == 1 && blue == -1) : (red == -1 && blue == 1), "row \(row)")
    }
  }

  @Test func greyChannelsReadGreyAsItIsAndColourByLuma() throws {
    let folder = try makeFolder()
    let grey = Tensor(shape: [1, 12, 20], scalars: [Float](repeating: 0.2, count: 240))
    try ImageFile.writePNG(grey, to: "\(folder)/images/b/grey.png")
    let source = try #require(
      try buildData(#"{"type": "image-folder", "path": "images", "size": 8, "channels": 1, "labels": true}"#, in: folder)
        as? ImageFolderSource)
    #expect(source.sampleShape == [1, 8, 8] && source.count == 6)
    let firsts = (0..<6).map { source.images.scalars[$0 * 64] }
    // Red (a) and blue (b) by luma, then the grey file: 8-bit levels mapped to [-1, 1].
    let expected: [Float] = [0.299, 0.299, 0.299, 0.114, 0.114, Float((0.2 * 255).rounded() / 255)].map { $0 * 2 - 1 }
    for (value, want) in zip(firsts, expected) { #expect(abs(value - want) < 1e-6, "\(firsts)") }
    #expect(dataProblem(#"{"type": "image-folder", "path": "images", "size": 8, "channels": 2}"#, in: folder).contains("data.channels"))
  }

  @Test func resizeMatchesPILBilinear() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/resize-pil.json")
    let fixture = try JSONValue.parse(Data(contentsOf: url), source: url.path)
    guard case .object(let root) = fixture, case .array(let cases) = root["cases"]! else { Issue.record("fixture"); return }
    #expect(cases.count == 3)
    for item in cases {
      guard case .object(let c) = item, case .array(let input) = c["input"]!, case .array(let output) = c["output"]!,
        case .array(let expected) = c["expected"]!
      else { continue }
      let shape = input.map { Int(number($0)) }
      let image = Tensor(shape: shape) { out in
        for k in 0..<shape[0] { for y in 0..<shape[1] { for x in 0..<shape[2] {
          out[(k * shape[1] + y) * shape[2] + x] = Float((k * 7 + y * 3 + x * 5) % 11) / 10
        } } }
      }
      let resized = ImageResizing.resize(image, height: Int(number(output[1])), width: Int(number(output[2])))
      let want = expected.map { Float(number($0)) }
      let worst = zip(resized.scalars, want).map { abs($0 - $1) }.max()!
      #expect(worst < 1e-5, "\(shape) -> \(output): largest difference \(worst)")
    }
  }

  @Test func unreadableImagesStopByDefaultOrAreSkippedWithACount() throws {
    let folder = try makeFolder()
    let broken = "\(folder)/images/a/broken.png"
    try Data("not a png".utf8).write(to: URL(fileURLWithPath: broken))
    let stopped = dataProblem(#"{"type": "image-folder", "path": "images", "size": 8}"#, in: folder)
    #expect(stopped.contains(broken) && stopped.contains("onError"), "\(stopped)")
    let source = try #require(try buildData(#"{"type": "image-folder", "path": "images", "size": 8, "onError": "skip"}"#, in: folder) as? ImageFolderSource)
    #expect(source.images.shape[0] == 5 && source.skipped.count == 1 && source.skipped[0].path == broken)
    // Labels need every image in a subfolder; an empty folder is refused.
    try ImageFile.writePNG(Tensor(shape: [3, 4, 4], scalars: [Float](repeating: 0.5, count: 48)), to: "\(folder)/images/loose.png")
    let loose = dataProblem(#"{"type": "image-folder", "path": "images", "size": 8, "labels": true, "onError": "skip"}"#, in: folder)
    #expect(loose.contains("loose.png") && loose.contains("top level"), "\(loose)")
    try FileManager.default.createDirectory(atPath: "\(folder)/empty", withIntermediateDirectories: true)
    #expect(dataProblem(#"{"type": "image-folder", "path": "empty", "size": 8}"#, in: folder).contains("found none"))
  }
}

@Suite struct TensorDataTests {
  @Test func drawsRowsWithTheirLabelsAndRefusesBadFiles() throws {
    let folder = temporaryFolder()
    let samples = Tensor(shape: [6, 2, 2, 2]) { out in for i in 0..<48 { out[i] = Float(i / 8) } }
    let labels = Tensor([0, 1, 2, 0, 1, 2])
    try SafetensorsFile.write(["images": samples, "classes": labels], to: folder + "/d.safetensors")
    let source = try #require(try buildData(#"{"type": "tensors", "path": "d.safetensors", "key": "images", "labels": "classes"}"#, in: folder) as? TensorSource)
    #expect(source.sampleShape == [2, 2, 2])
    let batch = try draw(source, 30)
    let values = try #require(batch.samples).scalars
    for (row, label) in try #require(batch.labels).enumerated() {
      let index = Int(values[row * 8])
      #expect(values[(row * 8)..<(row * 8 + 8)].allSatisfy { $0 == Float(index) } && label == index % 3)
    }
    let missing = dataProblem(#"{"type": "tensors", "path": "d.safetensors", "key": "pixels"}"#, in: folder)
    #expect(missing.contains("data.key") && missing.contains("classes, images"), "\(missing)")
    try SafetensorsFile.write(["images": samples, "classes": Tensor([0, 1, 2])], to: folder + "/short.safetensors")
    #expect(dataProblem(#"{"type": "tensors", "path": "short.safetensors", "key": "images", "labels": "classes"}"#, in: folder).contains("3 labels for 6 samples"))
    var poisoned = samples.scalars
    poisoned[5] = .nan
    try SafetensorsFile.write(["images": Tensor(shape: [6, 2, 2, 2], scalars: poisoned)], to: folder + "/nan.safetensors")
    let nan = dataProblem(#"{"type": "tensors", "path": "nan.safetensors"}"#, in: folder)
    #expect(nan.contains("nan.safetensors") && nan.lowercased().contains("nan"), "\(nan)")
  }
}
