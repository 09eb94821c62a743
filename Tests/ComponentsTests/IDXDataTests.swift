import BuiltInComponents
import DistillCore
import DistillTestSupport
import Foundation
import ImageIO
import Testing

@testable import DistillPipeline

/// The bytes of an IDX file: magic, dimensions, then big-endian `values` of `type`.
func idxBytes(type: UInt8, shape: [Int], values: [UInt8]) -> [UInt8] {
  var bytes: [UInt8] = [0, 0, type, UInt8(shape.count)]
  for dimension in shape { bytes += withUnsafeBytes(of: UInt32(dimension).bigEndian, Array.init) }
  return bytes + values
}

/// Writes `bytes` at `folder/name`, and a gzip copy beside it (`name.gz`) with the system's gzip.
func writeIDX(_ bytes: [UInt8], _ name: String, in folder: String) throws {
  let path = folder + "/" + name
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  let result = try runChildProcess(URL(fileURLWithPath: "/bin/gzip"), ["-k", "-f", path])
  #expect(result.status == 0)
}

@Suite struct IDXTests {
  @Test func readsEveryElementTypeBigEndianPlainOrGzip() throws {
    let folder = temporaryFolder()
    // 2 x 3 unsigned bytes, signed bytes, shorts, ints, floats, doubles.
    try writeIDX(idxBytes(type: 0x08, shape: [2, 3], values: [0, 1, 127, 128, 254, 255]), "u8", in: folder)
    try writeIDX(idxBytes(type: 0x09, shape: [2], values: [0xFF, 0x05]), "i8", in: folder)
    try writeIDX(idxBytes(type: 0x0B, shape: [2], values: [0xFF, 0xFE, 0x01, 0x00]), "i16", in: folder)
    try writeIDX(idxBytes(type: 0x0C, shape: [1], values: [0x00, 0x01, 0x00, 0x02]), "i32", in: folder)
    try writeIDX(idxBytes(type: 0x0D, shape: [1], values: withUnsafeBytes(of: Float(1.5).bitPattern.bigEndian, Array.init)), "f32", in: folder)
    try writeIDX(idxBytes(type: 0x0E, shape: [1], values: withUnsafeBytes(of: Double(-2.25).bitPattern.bigEndian, Array.init)), "f64", in: folder)
    let expected: [(String, [Int], [Float])] = [
      ("u8", [2, 3], [0, 1, 127, 128, 254, 255]), ("i8", [2], [-1, 5]), ("i16", [2], [-2, 256]),
      ("i32", [1], [65538]), ("f32", [1], [1.5]), ("f64", [1], [-2.25]),
    ]
    for (name, shape, values) in expected {
      for file in [name, name + ".gz"] {
        let array = try IDXArray.read(folder + "/" + file)
        #expect(array.shape == shape && array.values == values, "\(file): \(array.shape) \(array.values)")
      }
    }
  }

  @Test func malformedFilesAreRefusedWithWhatIsWrong() throws {
    let folder = temporaryFolder()
    let cases: [([UInt8], String)] = [
      ([1, 0, 8, 1, 0, 0, 0, 1, 7], "two zero bytes"),
      ([0, 0, 0x42, 1, 0, 0, 0, 1, 7], "unknown element type 0x42"),
      (idxBytes(type: 0x08, shape: [2, 2], values: [1, 2, 3]), "need 4 bytes, the file holds 3"),
      ([0, 0, 8, 3, 0, 0], "3 dimensions"),
    ]
    for (bytes, words) in cases {
      try writeIDX(bytes, "bad", in: folder)
      for file in ["bad", "bad.gz"] {
        let error = try #require(throws: DistillError.self) { try IDXArray.read(folder + "/" + file) }
        #expect("\(error)".contains(folder + "/" + file) && "\(error)".contains(words), "\(error)")
      }
    }
    let missing = try #require(throws: DistillError.self) { try IDXArray.read(folder + "/none") }
    #expect("\(missing)".contains("cannot open"))
  }

  static func dataSet(in folder: String, labels: [UInt8]) throws {
    // Three 2x2 images: all black, all white, a diagonal.
    try writeIDX(idxBytes(type: 0x08, shape: [3, 2, 2], values: [0, 0, 0, 0, 255, 255, 255, 255, 255, 0, 0, 255]), "images", in: folder)
    try writeIDX(idxBytes(type: 0x08, shape: [labels.count], values: labels), "labels", in: folder)
  }

  static func build(_ entry: String, in folder: String) throws -> any DataSource {
    let json = try JSONValue.parse(Data(entry.utf8), source: "d.json")
    return try AssembledPipeline.buildData(json, source: "d.json", baseDirectory: folder, registry: .standard()).data
  }

  @Test func theIDXSourceGivesGreyImagesInSignedUnitWithTheirLabels() throws {
    let folder = temporaryFolder()
    try Self.dataSet(in: folder, labels: [2, 0, 1])
    let source = try #require(
      try Self.build(#"{"type": "idx", "images": "images.gz", "labels": "labels", "classNames": ["a", "b", "c"]}"#, in: folder)
        as? any FiniteDataSource)
    #expect(source.sampleShape == [1, 2, 2] && source.count == 3 && source.labelNames == ["a", "b", "c"])
    let rows = source.rows([0, 1, 2])
    #expect(rows.samples?.scalars == [-1, -1, -1, -1, 1, 1, 1, 1, 1, -1, -1, 1])
    #expect(rows.labels == [2, 0, 1])
    let unlabelled = try Self.build(#"{"type": "idx", "images": "images"}"#, in: folder)
    #expect(unlabelled.labelNames == nil)
  }

  @Test func labelsThatDoNotFitAreRefusedNamingTheFileOrKey() throws {
    let folder = temporaryFolder()
    try Self.dataSet(in: folder, labels: [0, 1])
    let wrongCount = try #require(throws: ManifestError.self) {
      try Self.build(#"{"type": "idx", "images": "images", "labels": "labels"}"#, in: folder)
    }
    #expect("\(wrongCount)".contains(folder + "/labels") && "\(wrongCount)".contains("expected [3] unsigned bytes"))
    try Self.dataSet(in: folder, labels: [0, 1, 5])
    let fewNames = try #require(throws: ManifestError.self) {
      try Self.build(#"{"type": "idx", "images": "images", "labels": "labels", "classNames": ["x", "y"]}"#, in: folder)
    }
    #expect(fewNames.problems.map(\.path) == ["data.classNames"])
    let notImages = try #require(throws: ManifestError.self) {
      try Self.build(#"{"type": "idx", "images": "labels"}"#, in: folder)
    }
    #expect("\(notImages)".contains("expected [N, H, W] unsigned bytes"))
  }

  /// Fashion-MNIST as Debian ships it (`apt-get install dataset-fashion-mnist`), when present.
  @Test(.enabled(if: FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")))
  func readsFashionMNISTAsDebianShipsIt() throws {
    let source = try #require(
      try Self.build(
        #"{"type": "idx", "images": "t10k-images-idx3-ubyte.gz", "labels": "t10k-labels-idx1-ubyte.gz"}"#,
        in: "/usr/share/datasets/fashion-mnist") as? any FiniteDataSource)
    #expect(source.count == 10000 && source.sampleShape == [1, 28, 28] && source.labelNames?.count == 10)
    let batch = source.rows(Array(0..<10000))
    #expect(Set(batch.labels ?? []) == Set(0..<10))
    let values = try #require(batch.samples).scalars
    #expect(values.min() == -1 && values.max() == 1)
  }
}
