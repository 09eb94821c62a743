import DistillCore
import Foundation
import Testing

/// The fixtures of the core's tests (the diffusers UNets among them), reached by source path
/// from any test target.
public let coreFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().appendingPathComponent("DistillCoreTests/Fixtures")

/// sd-tiny: a Stable-Diffusion-layout pipeline folder made with diffusers 0.42.1 and
/// transformers 5.25 (`model_index.json`, `tokenizer/`, `text_encoder/`, `unet/`, `vae/`,
/// `scheduler/`) and `io.safetensors`, its components' inputs and outputs (its README in
/// ../shared/fixtures lists every tensor).
public let sdTinyFixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().appendingPathComponent("Fixtures/sd-tiny").path

/// A fresh temporary folder named after `prefix`, removed by the caller's `defer`.
public func makeTemporaryFolder(_ prefix: String) throws -> String {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url.path
}

/// Records a failure unless `body` throws a ``DistillError`` whose message contains every
/// one of `parts`.
public func expectDistillError(
  containing parts: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) { expectError(DistillError.self, containing: parts, sourceLocation: sourceLocation, body) }

/// Records a failure unless `body` throws an `E` whose message contains every one of `parts`.
public func expectError<E: Error>(
  _ type: E.Type, containing parts: [String], sourceLocation: SourceLocation = #_sourceLocation,
  _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("no error thrown", sourceLocation: sourceLocation)
  } catch {
    let text = "\(error)"
    #expect(error is E, "\(Swift.type(of: error)): \(text)", sourceLocation: sourceLocation)
    for part in parts { #expect(text.contains(part), "\"\(part)\" not in: \(text)", sourceLocation: sourceLocation) }
  }
}
