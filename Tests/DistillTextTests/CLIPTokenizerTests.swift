import DistillCore
import DistillTestSupport
import Foundation
import Testing

@testable import DistillText

/// CLIP's tokenizer against the ids Hugging Face's CLIPTokenizer gives for the sd-tiny
/// fixture's vocabulary (`Tests/Fixtures/sd-tiny`: the fixture's four prompts, and more in
/// `tokenizer/extra-ids.safetensors`, made by `tokenizer/make_ids.py` with `tokenizers`:
/// whitespace, contractions, digits, punctuation, accents, case, a prompt longer than 77
/// tokens, special tokens in the text, emoji).
@Suite struct CLIPTokenizerTests {
  static let folder = sdTinyFixture + "/tokenizer"

  static func expected(_ file: String, key: String) throws -> (prompts: [String], ids: [[Int]]) {
    let tensors = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/" + file)
    guard case .array(let items) = try JSONValue.parse(Data(tensors.metadata["prompts"]!.utf8), source: file) else {
      throw DistillError.malformed(path: file, detail: "no prompts")
    }
    let prompts = items.map { item -> String in if case .string(let s) = item { return s } else { return "" } }
    let ids = try tensors.tensor(key).scalars.map { Int($0) }
    return (prompts, (0..<prompts.count).map { Array(ids[($0 * 77)..<(($0 + 1) * 77)]) })
  }

  @Test(arguments: [["io.safetensors", "prompt_input_ids"], ["tokenizer/extra-ids.safetensors", "input_ids"]])
  func idsAreExactlyHuggingFaces(_ source: [String]) throws {
    let tokenizer = try CLIPTokenizer(folder: Self.folder)
    let (prompts, ids) = try Self.expected(source[0], key: source[1])
    for (prompt, expected) in zip(prompts, ids) {
      #expect(tokenizer.encode(prompt).ids == expected, "\"\(prompt)\"")
    }
  }

  @Test func aLongPromptIsTruncatedAndSaysSo() throws {
    let tokenizer = try CLIPTokenizer(folder: Self.folder)
    let encoding = tokenizer.encode(String(repeating: "a ", count: 100))
    #expect(encoding.ids.count == 77 && encoding.ids.last == tokenizer.endToken)
    #expect(encoding.truncatedTokens == 25)
    #expect(tokenizer.encode("a red circle").truncatedTokens == 0)
  }

  @Test func filesThatDisagreeAreRefusedNamingTheFileAndLine() throws {
    let folder = try makeTemporaryFolder("clip-tokenizer")
    for name in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
      try FileManager.default.copyItem(atPath: Self.folder + "/" + name, toPath: folder + "/" + name)
    }
    let merges = folder + "/merges.txt"
    try (String(contentsOfFile: merges, encoding: .utf8) + "q z\n").write(toFile: merges, atomically: true, encoding: .utf8)
    expectDistillError(containing: [merges, "line 122", "the two files disagree", "\"qz\""]) {
      _ = try CLIPTokenizer(folder: folder)
    }
    try FileManager.default.removeItem(atPath: merges)
    try FileManager.default.copyItem(atPath: Self.folder + "/merges.txt", toPath: merges)
    let config = folder + "/tokenizer_config.json"
    try #"{"bos_token": "<s>", "model_max_length": 77}"#.write(toFile: config, atomically: true, encoding: .utf8)
    expectDistillError(containing: [config, "bos_token", "\"<s>\""]) { _ = try CLIPTokenizer(folder: folder) }
    expectDistillError(containing: [folder + "/none/vocab.json"]) { _ = try CLIPTokenizer(folder: folder + "/none") }
  }
}
