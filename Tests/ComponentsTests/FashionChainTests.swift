import DistillCore
import DistillDiffusion
import Foundation
import ImageIO
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

  /// The chain's own full-size teacher, shipped in Templates/teachers/fashion-epsilon (the
  /// teacher of docs/fashion-chain.md's figures): a class-conditional ε UNet with its null
  /// class, whose noise predictions on held-out Fashion-MNIST images at t = 500, at their
  /// labels, are far from an untrained network's (ε MSE about 1); and the script distils it
  /// when given as `TEACHER`, without training a teacher.
  @Test(.enabled(if: installed)) func theShippedTeacherPredictsTheNoiseOfHeldOutImages() throws {
    let teacherFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("Templates/teachers/fashion-epsilon").path
    let teacher = try DenoiserFolder.load(folder: teacherFolder)
    #expect(teacher.classes?.count == 10 && teacher.classes?.null == 10 && teacher.prediction == .epsilon)
    let n = 64
    let images = try IDXArray.read("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
    let labels = try IDXArray.read("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    let x0 = Tensor(shape: [n, 1, 28, 28], scalars: images.values.prefix(n * 784).map { $0 / 127.5 - 1 })
    var rng = RandomGenerator(seed: 3)
    let noise = Tensor.normal([n, 1, 28, 28], using: &rng)
    let alphaBar = Float(teacher.schedule.alphaBar(500))
    let xt = x0 * alphaBar.squareRoot() + noise * (1 - alphaBar).squareRoot()
    let predicted = withoutGradients {
      teacher(xt, timesteps: Array(repeating: 500, count: n), condition: Condition(labels: labels.values.prefix(n).map { Int($0) }))
    }
    let error = (predicted - noise).square().mean().item
    print("shipped Fashion teacher: ε MSE at t = 500 on \(n) held-out images \(error)")
    #expect(error < 0.03, "\(error)")

    let out = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: out) }
    let result = try runChainScript(
      "fashion-chain.sh", into: out,
      settings: [
        "TEACHER": teacherFolder, "PAIRS": "4",
        "SET": "training.steps=1 training.batchSize=4 evaluation.every=1 evaluation.samples=10 evaluation.gridSize=10",
        "STUDENT_SET": "evaluation.metrics[1].steps=2 evaluation.metrics[1].samples=4",
      ])
    #expect(result.status == 0, "\(result.error)")
    #expect(!FileManager.default.fileExists(atPath: out + "/teacher"))
    #expect(FileManager.default.fileExists(atPath: out + "/student/generator.safetensors"))
  }
}
