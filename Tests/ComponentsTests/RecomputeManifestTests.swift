import BuiltInComponents
import DistillCore
import DistillPipeline
import Testing

/// `training.recompute`: read as an enum, refused by name otherwise.
@Suite struct RecomputeManifestTests {
  func decode(_ value: String) throws -> Manifest {
    var json = toyManifestJSON(output: "/tmp/unused")
    try ManifestOverride(parsing: "training.recompute=\(value)").apply(to: &json)
    return try Manifest.decode(
      json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: .standard())
  }

  @Test func eachModeIsRead() throws {
    #expect(try decode("blocks").training.recompute == .blocks)
    #expect(try decode("selective").training.recompute == .selective)
    #expect(try decode("none").training.recompute == ActivationRecompute.none)
  }

  @Test func anUnknownModeIsRefusedNamingTheKey() {
    #expect {
      try decode("everything")
    } throws: { error in
      guard let error = error as? ManifestError, error.problems.count == 1 else { return false }
      return error.problems[0].path == "training.recompute"
        && error.problems[0].message.contains("\"blocks\"")
        && error.problems[0].message.contains("\"selective\"")
    }
  }
}
