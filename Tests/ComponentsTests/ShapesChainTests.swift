import DistillCore
import Foundation
import ImageIO
import Testing

/// `scripts/shapes-chain.sh` end to end, with a few steps per stage (the full-length figures
/// are in docs/shapes-chain.md): classifier, teacher, pairs, student, and the summary table,
/// on the built-in shapes and on a folder of images with one subfolder per class.
@Suite(.serialized) struct ShapesChainTests {
  /// Runs the chain into `out` with tiny settings and `extra` environment.
  func runChain(_ out: String, extra: [String: String] = [:]) throws -> ProcessResult {
    let settings = [
      "PAIRS": "8",
      "SET": "training.steps=2 training.batchSize=4 evaluation.every=2 evaluation.samples=16 evaluation.gridSize=4",
      "STUDENT_SET": "evaluation.metrics[2].steps=2 evaluation.metrics[2].samples=4",
    ]
    return try runChainScript("shapes-chain.sh", into: out, settings: settings.merging(extra) { $1 })
  }

  /// The value of `key` in the summary table, for the teacher and the student.
  func figures(_ output: String, _ key: String) -> [Double] {
    guard let line = output.split(separator: "\n").first(where: { $0.hasPrefix(key + " ") }) else { return [] }
    return line.split(separator: " ").dropFirst().compactMap { Double($0) }
  }

  func expectChainOutputs(_ out: String, _ result: ProcessResult) {
    #expect(result.status == 0, "\(result.error)")
    for file in [
      "classifier/classifier.json", "teacher/denoiser/denoiser.json", "pairs/pairs.json", "student/generator.safetensors",
      "student/report.html",
    ] {
      #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
    }
    // Both runs were evaluated with the classifier's features and modes.
    for key in ["FD_classifier", "mode-coverage", "sample-std"] {
      let values = figures(result.output, key)
      #expect(values.count == 2 && values.allSatisfy(\.isFinite), "\(key): \(result.output)")
    }
    #expect(figures(result.output, "teacher-student-l2").count == 1, "\(result.output)")
  }

  @Test func runsOnShapes() throws {
    let out = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: out) }
    expectChainOutputs(out, try runChain(out))
  }

  @Test func runsOnAFolderOfImagesWithClassSubfolders() throws {
    let out = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: out) }
    // 2 classes of 24 images each: red and blue squares at random places, 20x20 (resized to 16).
    var rng = RandomGenerator(seed: 7)
    for (name, channel) in [("red", 0), ("blue", 2)] {
      try FileManager.default.createDirectory(atPath: "\(out)/images/\(name)", withIntermediateDirectories: true)
      for i in 0..<24 {
        let corner = rng.integers(count: 2, in: 0..<10)
        let image = Tensor(shape: [3, 20, 20]) { pixels in
          pixels.initialize(repeating: 0)
          for y in corner[0]..<(corner[0] + 10) {
            for x in corner[1]..<(corner[1] + 10) { pixels[(channel * 20 + y) * 20 + x] = 1 }
          }
        }
        try ImageFile.writePNG(image, to: "\(out)/images/\(name)/\(i).png")
      }
    }
    let data = "{\"type\": \"image-folder\", \"path\": \"\(out)/images\", \"size\": 16, \"labels\": true}"
    let result = try runChain(out + "/chain", extra: ["DATA": data])
    expectChainOutputs(out + "/chain", result)
    #expect(result.output.contains("held-out accuracy"))
  }

  @Test func aBadDataEntryStopsTheChainWithExitCode2() throws {
    let out = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: out) }
    let result = try runChain(out, extra: ["DATA": "{\"type\": \"image-folder\", \"path\": \"\(out)/none\", \"size\": 16}"])
    #expect(result.status == 2)
    #expect(result.error.contains("\(out)/none"))
    #expect(!FileManager.default.fileExists(atPath: out + "/teacher"))
  }
}
