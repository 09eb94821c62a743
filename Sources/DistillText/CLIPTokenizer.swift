import DistillCore
import Foundation

/// CLIP's byte-level BPE tokenizer, read from a `tokenizer/` folder as diffusers pipelines
/// save it (`vocab.json`, `merges.txt`, `tokenizer_config.json`), computing what Hugging Face's
/// `CLIPTokenizer` (its `tokenizers` backend) computes:
///
/// 1. the text is NFC-normalised, every run of whitespace becomes one space, and it is
///    lower-cased;
/// 2. it is split by CLIP's pattern (the special tokens, `'s 't 're 've 'm 'll 'd`, runs of
///    letters, single digits, runs of other non-space characters); whitespace is dropped;
/// 3. each piece's UTF-8 bytes are mapped to GPT-2's printable byte alphabet, the last symbol
///    takes the end-of-word suffix `</w>`, and the merges of `merges.txt` are applied, lowest
///    rank first; a special token in the text is its own id;
/// 4. the ids are framed by `<|startoftext|>` and `<|endoftext|>` and, with ``encode(_:)``,
///    truncated to `model_max_length` and padded with the pad token (`<|endoftext|>`).
///
/// A symbol that is not in the vocabulary becomes the unknown token, one per symbol.
public struct CLIPTokenizer: Sendable {
  /// Token ids by token.
  public let vocabulary: [String: Int]
  /// The rank of each merge, keyed by its two symbols.
  let ranks: [Pair: Int]
  public let startToken: Int
  public let endToken: Int
  public let padToken: Int
  public let unknownToken: Int
  /// The sequence length ``encode(_:)`` pads and truncates to (77 for Stable Diffusion).
  public let maximumLength: Int

  struct Pair: Hashable, Sendable {
    var first: String
    var second: String
  }

  /// The ids of one prompt and whether it was truncated to fit ``maximumLength``.
  public struct Encoding: Equatable, Sendable {
    public var ids: [Int]
    /// The prompt's tokens beyond the encoder's positions, dropped (CLIP's tokenizer warns too).
    public var truncatedTokens: Int
  }

  /// Reads `folder` (`vocab.json`, `merges.txt`, and `tokenizer_config.json` when present).
  ///
  /// - Throws: ``DistillError`` naming the file and key or line: a missing file, malformed JSON,
  ///   a merge whose symbols or result are not in the vocabulary, special tokens the vocabulary
  ///   lacks (files that disagree).
  public init(folder: String) throws {
    func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
    let vocabularyPath = path("vocab.json")
    guard let vocabularyData = FileManager.default.contents(atPath: vocabularyPath) else {
      throw DistillError.io(path: vocabularyPath, reason: "cannot read the tokenizer's vocabulary")
    }
    guard case .object(let entries) = try JSONValue.parse(vocabularyData, source: vocabularyPath) else {
      throw DistillError.malformed(path: vocabularyPath, detail: "expected an object of token ids")
    }
    var vocabulary: [String: Int] = [:]
    for (token, value) in entries {
      guard case .number(let id) = value, id >= 0, id == id.rounded(), id < 1e9 else {
        throw DistillError.invalidValue(location: "\(vocabularyPath): \(token)", expected: "a token id", found: value.summary)
      }
      vocabulary[token] = Int(id)
    }

    var config: [String: JSONValue] = [:]
    let configPath = path("tokenizer_config.json")
    if let data = FileManager.default.contents(atPath: configPath) {
      guard case .object(let object) = try JSONValue.parse(data, source: configPath) else {
        throw DistillError.malformed(path: configPath, detail: "expected an object")
      }
      config = object
    }
    func special(_ key: String, _ fallback: String) throws -> Int {
      var token = fallback
      switch config[key] {
      case .string(let name)?: token = name
      case .object(let object)?:
        if case .string(let name)? = object["content"] { token = name }
      default: break
      }
      guard let id = vocabulary[token] else {
        throw DistillError.invalidValue(
          location: "\(configPath): \(key)", expected: "a token of \(vocabularyPath)", found: "\"\(token)\"")
      }
      return id
    }
    startToken = try special("bos_token", "<|startoftext|>")
    endToken = try special("eos_token", "<|endoftext|>")
    padToken = try special("pad_token", "<|endoftext|>")
    unknownToken = try special("unk_token", "<|endoftext|>")
    switch config["model_max_length"] {
    case .number(let n)? where n >= 2 && n == n.rounded() && n <= 1e6: maximumLength = Int(n)
    case nil: maximumLength = 77
    case let other?:
      throw DistillError.invalidValue(
        location: "\(configPath): model_max_length", expected: "an integer of at least 2", found: other.summary)
    }

    let mergesPath = path("merges.txt")
    guard let mergesData = FileManager.default.contents(atPath: mergesPath),
      let mergesText = String(data: mergesData, encoding: .utf8)
    else { throw DistillError.io(path: mergesPath, reason: "cannot read the tokenizer's merges") }
    var ranks: [Pair: Int] = [:]
    for (number, line) in mergesText.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      if line.hasPrefix("#version") || line.isEmpty { continue }
      let parts = line.split(separator: " ")
      guard parts.count == 2 else {
        throw DistillError.invalidValue(
          location: "\(mergesPath): line \(number + 1)", expected: "two symbols separated by a space", found: "\"\(line)\"")
      }
      let pair = Pair(first: String(parts[0]), second: String(parts[1]))
      guard vocabulary[pair.first + pair.second] != nil else {
        throw DistillError.invalidValue(
          location: "\(mergesPath): line \(number + 1)",
          expected: "a merge whose result is a token of \(vocabularyPath) (the two files disagree)",
          found: "\"\(pair.first + pair.second)\"")
      }
      if ranks[pair] == nil { ranks[pair] = ranks.count }
    }
    self.vocabulary = vocabulary
    self.ranks = ranks
  }

  /// `prompt`'s ids framed by the start and end tokens, truncated to ``maximumLength`` (the end
  /// token kept) and padded with the pad token: what the text encoder takes.
  public func encode(_ prompt: String) -> Encoding {
    let body = tokenize(prompt)
    let room = maximumLength - 2
    let kept = Array(body.prefix(room))
    let ids = [startToken] + kept + [endToken]
    return Encoding(
      ids: ids + [Int](repeating: padToken, count: maximumLength - ids.count),
      truncatedTokens: body.count - kept.count)
  }

  /// The ids of `text` without start, end or padding.
  public func tokenize(_ text: String) -> [Int] {
    let composed = text.precomposedStringWithCanonicalMapping
    let normalised = Self.whitespace.stringByReplacingMatches(
      in: composed, range: NSRange(composed.startIndex..., in: composed), withTemplate: " "
    ).lowercased()
    var ids: [Int] = []
    let range = NSRange(normalised.startIndex..., in: normalised)
    for match in Self.pattern.matches(in: normalised, range: range) {
      guard let pieceRange = Range(match.range, in: normalised) else { continue }
      let piece = String(normalised[pieceRange])
      if piece == "<|startoftext|>" || piece == "<|endoftext|>", let id = vocabulary[piece] {
        ids.append(id)
        continue
      }
      for symbol in bpe(piece) { ids.append(vocabulary[symbol] ?? unknownToken) }
    }
    return ids
  }

  /// The BPE symbols of one piece: its bytes in GPT-2's alphabet, `</w>` on the last, merged.
  func bpe(_ piece: String) -> [String] {
    var symbols = piece.utf8.map { String(Self.byteAlphabet[Int($0)]) }
    guard !symbols.isEmpty else { return [] }
    symbols[symbols.count - 1] += "</w>"
    while symbols.count > 1 {
      var best: (rank: Int, index: Int)?
      for i in 0..<(symbols.count - 1) {
        if let rank = ranks[Pair(first: symbols[i], second: symbols[i + 1])], rank < (best?.rank ?? .max) {
          best = (rank, i)
        }
      }
      guard let best else { break }
      let (first, second) = (symbols[best.index], symbols[best.index + 1])
      var merged: [String] = []
      var i = 0
      while i < symbols.count {
        if i + 1 < symbols.count, symbols[i] == first, symbols[i + 1] == second {
          merged.append(first + second)
          i += 2
        } else {
          merged.append(symbols[i])
          i += 1
        }
      }
      symbols = merged
    }
    return symbols
  }

  /// GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others for the
  /// code points from 256 on, in byte order.
  static let byteAlphabet: [Character] = {
    let printable = Array(33...126) + Array(161...172) + Array(174...255)
    var table = [Character](repeating: " ", count: 256)
    var next = 256
    for byte in 0..<256 {
      let scalar = printable.contains(byte) ? byte : { defer { next += 1 }; return next }()
      table[byte] = Character(Unicode.Scalar(UInt32(scalar))!)
    }
    return table
  }()

  static let whitespace = try! NSRegularExpression(pattern: #"\s+"#)
  static let pattern = try! NSRegularExpression(
    pattern: #"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"#)
}
