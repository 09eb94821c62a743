import DistillCore
import Foundation
import Testing

/// `scripts/fashion-chain.sh` end to end with a few steps per stage, on the Fashion-MNIST files
/// Debian's dataset-fashion-mnist installs (scripts/setup.sh installs it; CI has it): classifier,
/// class-conditional teacher, guided labelled pairs, one-step conditional student, and the
/// table with the per-class figures.
@Suite(.serialized) struct FashionChainTests {
  static let installed = FileManager.default.fileExists(
    atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")

  @Test(.enabled(if: installed)) func runsWithAFewStepsPerStage() throws {
    let out = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: out) }
    let result = try runChainScript(
      "fashion-chain.sh", into: out,
      settings: [
        "PAIRS": "8",
        "SET": "training.steps=2 training.batchSize=4 evaluation.every=2 evaluation.samples=20 evaluation.gridSize=10",
        "TEACHER_SET": "generator.steps=2",
        "STUDENT_SET": "evaluation.metrics[1].steps=2 evaluation.metrics[1].samples=4",
      ])
    #expect(result.status == 0, "\(result.error)")
    for file in ["classifier/classifier.json", "teacher/denoiser/denoiser.json", "pairs/pairs.json", "student/generator.safetensors"] {
      #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
    }
    // The pairs carry the classes and the guidance; the teacher folder names its null class.
    let pairs = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: out + "/pairs/pairs.json")), source: "pairs")
    guard case .object(let index) = pairs else { throw DistillError.malformed(path: "pairs.json", detail: "not an object") }
    #expect(index["classes"] == .number(10) && index["guidance"] == .number(3), "\(pairs)")
    let denoiser = try JSONValue.parse(
      Data(contentsOf: URL(fileURLWithPath: out + "/teacher/denoiser/denoiser.json")), source: "denoiser")
    guard case .object(let document) = denoiser, case .object(let network)? = document["network"] else {
      throw DistillError.malformed(path: "denoiser.json", detail: "no network object")
    }
    #expect(network["nullClass"] == .number(10), "\(denoiser)")
    // Both runs report the overall and the per-class figures.
    for key in ["FD_classifier", "class-accuracy", "class-accuracy/class-9", "FD_classifier/class-0"] {
      let line = result.output.split(separator: "\n").first { $0.hasPrefix(key + " ") }
      let values = line.map { $0.split(separator: " ").dropFirst().compactMap { Double($0) } } ?? []
      #expect(values.count == 2 && values.allSatisfy(\.isFinite), "\(key): \(result.output)")
    }
  }
}
