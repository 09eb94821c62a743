import DistillCore
import Foundation
import ImageIO
import DistillTestSupport
import Testing

@testable import DistillCLI

/// The LPIPS fixtures of the network tests, reached by source path.
private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .appendingPathComponent("DistillNNTests/Fixtures").path
private let squeezeWeights = try! lpipsTestWeights(fixture: fixtures + "/lpips-squeeze-randbackbone/weights.safetensors")
private let squeezeIO = fixtures + "/lpips-squeeze-randbackbone/io.safetensors"

/// The `pipeline` executable built beside this test bundle, if any.
private let pipelineExecutable: String? = {
  let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  for candidate in [folder, folder.deletingLastPathComponent()] {
    let path = candidate.appendingPathComponent("pipeline").path
    if FileManager.default.isExecutableFile(atPath: path) { return path }
  }
  return nil
}()

private func temporaryPath(_ name: String) -> String {
  FileManager.default.temporaryDirectory.appendingPathComponent("lpips-cli-\(UUID().uuidString)-\(name)").path
}

private func thrownMessage(_ body: () throws -> Void) -> String? {
  do {
    try body()
    return nil
  } catch let error as DistillError {
    return error.description
  } catch {
    return "not a DistillError: \(error)"
  }
}

@Suite struct LPIPSComparisonTests {
  @Test func safetensorsBatchesGiveThePackagesDistances() throws {
    let io = try SafetensorsFile.read(contentsOf: squeezeIO)
    let d = try LPIPSComparison.distances(
      network: .squeeze, weightsPath: squeezeWeights, pathA: squeezeIO, pathB: squeezeIO, keyA: "a", keyB: "b")
    let expected = try io.tensor("distance").scalars
    #expect(d.count == 2)
    for (x, y) in zip(d, expected) { #expect(abs(x - y) <= 1e-5 * y, "\(x) vs \(y)") }
  }

  @Test func withoutAKeyTheFirstStoredTensorIsRead() throws {
    // `a` is stored first in the fixture; comparing it with itself gives zeros.
    let d = try LPIPSComparison.distances(network: .squeeze, weightsPath: squeezeWeights, pathA: squeezeIO, pathB: squeezeIO)
    #expect(d == [0, 0])
  }

  @Test func imageFilesArePairsMappedToSignedUnit() throws {
    let io = try SafetensorsFile.read(contentsOf: squeezeIO)
    let (a, b) = (try io.tensor("a"), try io.tensor("b"))
    let (pathA, pathB) = (temporaryPath("a.png"), temporaryPath("b.png"))
    defer { for p in [pathA, pathB] { try? FileManager.default.removeItem(atPath: p) } }
    // 16-bit PNGs keep the values to 1.5e-5, so the distance is the batch's first one.
    try ImageFile.writePNG(ImageFile.fromSignedUnit(a.sliced(axis: 0, 0..<1).reshaped([3, 32, 32])), to: pathA, bitDepth: 16)
    try ImageFile.writePNG(ImageFile.fromSignedUnit(b.sliced(axis: 0, 0..<1).reshaped([3, 32, 32])), to: pathB, bitDepth: 16)
    let d = try LPIPSComparison.distances(network: .squeeze, weightsPath: squeezeWeights, pathA: pathA, pathB: pathB)
    let expected = try io.tensor("distance").scalars[0]
    #expect(d.count == 1)
    #expect(abs(d[0] - expected) <= 1e-3 * expected, "\(d[0]) vs \(expected)")
  }

  @Test func badInputsNameTheFileOrKey() throws {
    let missing = thrownMessage {
      _ = try LPIPSComparison.distances(network: .squeeze, weightsPath: squeezeWeights, pathA: "/nonexistent/a.png", pathB: squeezeIO)
    }
    #expect(missing?.contains("/nonexistent/a.png") == true)
    let unknownKey = thrownMessage {
      _ = try LPIPSComparison.distances(
        network: .squeeze, weightsPath: squeezeWeights, pathA: squeezeIO, pathB: squeezeIO, keyA: "images", keyB: "b")
    }
    #expect(unknownKey?.contains("'images'") == true)
    #expect(unknownKey?.contains("a, b, distance") == true)
    let wrongRank = thrownMessage {
      _ = try LPIPSComparison.distances(
        network: .squeeze, weightsPath: squeezeWeights, pathA: squeezeIO, pathB: squeezeIO, keyA: "distance", keyB: "distance")
    }
    #expect(wrongRank?.contains("tensor 'distance': expected a batch [N, 3, H, W], found shape [2]") == true)
    let wrongNet = thrownMessage {
      _ = try LPIPSComparison.distances(network: .alex, weightsPath: squeezeWeights, pathA: squeezeIO, pathB: squeezeIO)
    }
    #expect(wrongNet?.contains("these are the weights of LPIPS squeeze") == true)
  }

  @Test func shapesThatDifferAreRefused() throws {
    let small = temporaryPath("small.safetensors")
    defer { try? FileManager.default.removeItem(atPath: small) }
    try SafetensorsFile.write(["x": Tensor.zeros([3, 3, 24, 24])], to: small)
    let message = thrownMessage {
      _ = try LPIPSComparison.distances(network: .squeeze, weightsPath: squeezeWeights, pathA: squeezeIO, pathB: small)
    }
    #expect(message?.contains("[2, 3, 32, 32]") == true && message?.contains("[3, 3, 24, 24]") == true)
    let outOfRange = temporaryPath("range.safetensors")
    defer { try? FileManager.default.removeItem(atPath: outOfRange) }
    try SafetensorsFile.write(["x": Tensor.full([1, 3, 32, 32], 255)], to: outOfRange)
    let range = thrownMessage {
      _ = try LPIPSComparison.distances(network: .squeeze, weightsPath: squeezeWeights, pathA: outOfRange, pathB: outOfRange)
    }
    #expect(range?.contains("expected values in [-1, 1]") == true)
  }
}

/// The built executable: output format and exit codes.
@Suite(.enabled(if: pipelineExecutable != nil, "the pipeline executable is not built beside the tests"))
struct LPIPSCommandTests {
  private func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
    let result = try runChildProcess(URL(fileURLWithPath: pipelineExecutable!), arguments)
    return (result.status, result.output, result.error)
  }

  @Test func printsOneDistancePerPair() throws {
    let result = try run(["lpips", "--net", "squeeze", "--weights", squeezeWeights, "--key", "a", "--key-b", "b", squeezeIO, squeezeIO])
    #expect(result.status == 0, "\(result.error)")
    let lines = result.output.split(separator: "\n").compactMap { Float($0) }
    let expected = try SafetensorsFile.read(contentsOf: squeezeIO).tensor("distance").scalars
    #expect(lines.count == 2)
    for (x, y) in zip(lines, expected) { #expect(abs(x - y) <= 1e-5 * y) }
  }

  @Test func badInputExitsWithTwo() throws {
    let missing = try run(["lpips", "--net", "squeeze", "--weights", squeezeWeights, "/nonexistent/a.png", squeezeIO])
    #expect(missing.status == 2)
    #expect(missing.error.contains("/nonexistent/a.png"))
    let wrongNet = try run(["lpips", "--net", "vgg", "--weights", squeezeWeights, squeezeIO, squeezeIO])
    #expect(wrongNet.status == 2)
    #expect(wrongNet.error.contains("these are the weights of LPIPS squeeze"))
    let unknownNet = try run(["lpips", "--net", "resnet", "--weights", squeezeWeights, squeezeIO, squeezeIO])
    #expect(unknownNet.status == 2)
    #expect(unknownNet.error.contains("The value 'resnet' is invalid for '--net <net>'"), "\(unknownNet.error)")
  }
}
