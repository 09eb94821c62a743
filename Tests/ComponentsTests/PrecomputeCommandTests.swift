import DistillCore
import DistillPipeline
import DistillTestSupport
import Foundation
import Testing

/// The `pipeline` executable beside the test bundle (the build that ran the tests), else
/// the package's `.build/release/pipeline`; `nil` when neither was built.
private let builtPipelineTool: String? = {
  let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("pipeline").path
  let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  let release = packageRoot.appendingPathComponent(".build/release/pipeline").path
  return [besideTests, release].first { FileManager.default.isExecutableFile(atPath: $0) }
}()

private func scratchFolder(_ name: String = #function) -> String {
  let path = NSTemporaryDirectory() + "distillery-precompute-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
  try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// Runs `pipeline` with `arguments`; returns the exit status and standard error.
private func runPipelineTool(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
  let result = try runChildProcess(URL(fileURLWithPath: builtPipelineTool!), arguments)
  return (result.status, result.error)
}

private func writeManifestText(_ text: String, in folder: String) -> String {
  let path = folder + "/manifest.json"
  FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
  return path
}

private let toyManifest = """
  {"teacher": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.3},
   "generator": {"type": "mlp"}, "losses": [{"type": "denoising"}]}
  """

@Suite(.enabled(if: builtPipelineTool != nil, "the pipeline executable is not built (swift build -c release)"))
struct PrecomputeCommandTests {
  @Test func badInputExitsWithTwoAndSaysWhy() throws {
    let folder = scratchFolder()
    let manifest = writeManifestText(toyManifest, in: folder)
    let out = folder + "/pairs"
    let cases: [([String], String)] = [
      (["precompute", folder + "/absent.json", "--out", out, "--count", "4"], "no such manifest file"),
      (["precompute", manifest, "--out", out, "--count", "0"], "--count"),
      (["precompute", manifest, "--out", out, "--count", "4", "--sampler", "dpm"], "--sampler"),
      (["precompute", manifest, "--out", out, "--count", "4", "--steps", "5000"], "--steps"),
      (["precompute", manifest, "--out", out, "--count", "4", "--shard-size", "0"], "--shard-size"),
      (["precompute", manifest, "--out", out, "--count", "4", "--set", "teacher.std=\"wide\""], "teacher.std"),
    ]
    for (arguments, expected) in cases {
      let (status, stderr) = try runPipelineTool(arguments)
      #expect(status == 2, "\(arguments): \(stderr)")
      #expect(stderr.contains(expected), "\(arguments): \(stderr)")
    }
    #expect(!FileManager.default.fileExists(atPath: out + "/pairs.json"))
    let teacherless = writeManifestText(#"{"generator": {"type": "mlp"}, "losses": [{"type": "denoising"}]}"#, in: scratchFolder())
    let (status, stderr) = try runPipelineTool(["precompute", teacherless, "--out", out, "--count", "4"])
    #expect(status == 2 && stderr.contains("teacher"), "\(stderr)")
  }

  @Test func otherPairsAreReplacedOnlyWithForce() throws {
    let folder = scratchFolder()
    let manifest = writeManifestText(toyManifest, in: folder)
    let out = folder + "/pairs"
    let first = try runPipelineTool(["precompute", manifest, "--out", out, "--count", "8", "--steps", "5", "--quiet"])
    #expect(first.status == 0, "\(first.stderr)")
    let other = ["precompute", manifest, "--out", out, "--count", "8", "--steps", "5", "--seed", "9", "--quiet"]
    let refused = try runPipelineTool(other)
    #expect(refused.status == 2 && refused.stderr.contains("--force"), "\(refused.stderr)")
    #expect(try PairsIndex.read(folder: out).seed == 0)
    let forced = try runPipelineTool(other + ["--force"])
    #expect(forced.status == 0, "\(forced.stderr)")
    #expect(try PairsIndex.read(folder: out).seed == 9)
    FileManager.default.createFile(atPath: folder + "/notes.txt", contents: Data("x".utf8))
    let foreign = try runPipelineTool(["precompute", manifest, "--out", folder, "--count", "8", "--force"])
    #expect(foreign.status == 2 && foreign.stderr.contains("other files"), "\(foreign.stderr)")
  }
}
