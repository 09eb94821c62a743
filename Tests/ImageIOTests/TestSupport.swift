import DistillCore
import Foundation
import Testing

@testable import ImageIO

/// A fixture file's path inside the test bundle.
func fixturePath(_ name: String) throws -> String {
  let url = try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
  return url.path
}

/// One entry of Fixtures/expected.json: the `[C, H, W]` shape and integer samples over `max`.
struct ExpectedImage: Decodable {
  var shape: [Int]
  var max: Int
  var samples: [Int]

  var scalars: [Float] { samples.map { Float($0) / Float(max) } }
}

func expectedImages() throws -> [String: ExpectedImage] {
  let data = try Data(contentsOf: URL(fileURLWithPath: try fixturePath("expected.json")))
  return try JSONDecoder().decode([String: ExpectedImage].self, from: data)
}

/// A fresh, empty folder under the system's temporary folder, removed by the caller.
func makeScratchFolder() throws -> String {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("imageio-tests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url.path
}

func withScratchFolder<R>(_ body: (String) throws -> R) throws -> R {
  let folder = try makeScratchFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  return try body(folder)
}

/// The largest elementwise difference of two equal-length arrays.
func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
  zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Deterministic values for tests (xorshift), in `[0, 1)`.
struct SeededValues {
  var state: UInt64
  init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }
  mutating func next() -> Float {
    state ^= state << 13
    state ^= state >> 7
    state ^= state << 17
    return Float(state >> 40) / Float(1 << 24)
  }
  mutating func tensor(_ shape: [Int]) -> Tensor {
    Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in next() })
  }
}

/// Runs `body`, expecting a `DistillError` whose description names `path`; returns it.
@discardableResult
func expectErrorNaming(
  _ path: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> DistillError? {
  do {
    try body()
    Issue.record("expected an error for \(path)", sourceLocation: sourceLocation)
    return nil
  } catch let error as DistillError {
    #expect(error.description.contains(path), "\(error) does not name \(path)", sourceLocation: sourceLocation)
    return error
  } catch {
    Issue.record("expected a DistillError, got \(error)", sourceLocation: sourceLocation)
    return nil
  }
}
