import DistillCore
import DistillTestSupport
import Foundation
import Testing

@testable import DistillText

/// CLIP's text encoder against transformers' `CLIPTextModel` on the sd-tiny text encoder
/// (`Tests/Fixtures/sd-tiny/text_encoder`, and `text_hidden_states` of `io.safetensors` for
/// the four prompts' ids).
@Suite struct CLIPTextModelTests {
  static let folder = sdTinyFixture + "/text_encoder"

  @Test func lastHiddenStateMatchesTransformers() throws {
    let model = try CLIPTextModel.load(folder: Self.folder)
    #expect(model.config.activation == .quickGELU && model.config.layers == 2 && model.config.positions == 77)
    let io = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/io.safetensors")
    let ids = try io.tensor("prompt_input_ids").scalars.map { Int($0) }
    let rows = (0..<4).map { Array(ids[($0 * 77)..<(($0 + 1) * 77)]) }
    let expected = try io.tensor("text_hidden_states")
    let hidden = withoutGradients { model(rows) }
    #expect(hidden.shape == [4, 77, 32])
    let difference = zip(hidden.scalars, expected.scalars).map { Swift.abs($0 - $1) }.max()!
    #expect(difference < 1e-4, "max |difference| \(difference)")
    // The mask is causal: a token's state does not depend on the tokens after it.
    var changed = rows[0]
    changed[10] = 400
    let other = withoutGradients { model([changed]) }
    #expect(zip(other.scalars.prefix(10 * 32), hidden.scalars.prefix(10 * 32)).allSatisfy { $0 == $1 })
  }

  @Test func configAndWeightsThatDoNotFitAreRefusedByName() throws {
    let folder = try makeTemporaryFolder("clip-text")
    try FileManager.default.copyItem(atPath: Self.folder + "/model.safetensors", toPath: folder + "/model.safetensors")
    let config = folder + "/config.json"
    var text = try String(contentsOfFile: Self.folder + "/config.json", encoding: .utf8)
    try text.replacingOccurrences(of: "\"quick_gelu\"", with: "\"relu\"").write(toFile: config, atomically: true, encoding: .utf8)
    expectDistillError(containing: [config, "hidden_act", "relu"]) { _ = try CLIPTextModel.load(folder: folder) }
    text = text.replacingOccurrences(of: "\"num_hidden_layers\": 2", with: "\"num_hidden_layers\": 3")
    try text.write(toFile: config, atomically: true, encoding: .utf8)
    expectDistillError(containing: [folder + "/model.safetensors", "encoder.layers.2"]) { _ = try CLIPTextModel.load(folder: folder) }
    try #"{"model_type": "clip_text_model", "vocab_size": 634, "hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 77, "rope_theta": 1}"#
      .write(toFile: config, atomically: true, encoding: .utf8)
    expectDistillError(containing: [config, "rope_theta"]) { _ = try CLIPTextModel.load(folder: folder) }
  }
}
