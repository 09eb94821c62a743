/// A small strict JSON parser, for safetensors headers and for every JSON document a user
/// gives (manifests, configs).
///
/// Used rather than `JSONSerialization` / `JSONDecoder` so that errors give a position
/// (line and column in a document, which Foundation does not report on Linux), and so that duplicate keys are rejected in every object
/// (the reference's serde rejects duplicate fields in an entry, and a duplicate tensor name
/// can never tile the buffer), integers are read exactly (no detour through `Double`), and
/// nesting depth is bounded like serde_json's (no stack overflow on `[[[[...`).

enum JSONNode {
  case object([(key: String, value: JSONNode)])
  case array([JSONNode])
  case string(String)
  /// The literal text of a number, checked against the JSON grammar.
  case number(String)
  case bool(Bool)
  case null

  /// A short description for error messages.
  var kind: String {
    switch self {
    case .object: return "an object"
    case .array: return "an array"
    case .string(let s): return "the string \"\(s.count > 40 ? String(s.prefix(40)) + "..." : s)\""
    case .number(let n): return "the number \(n)"
    case .bool(let b): return "\(b)"
    case .null: return "null"
    }
  }
}

/// A strict RFC 8259 parser over the header bytes (already checked to be valid UTF-8).
struct StrictJSONParser {
  let bytes: UnsafeRawBufferPointer
  let path: String
  var position = 0
  var depth = 0
  static let maxDepth = 128  // serde_json's default recursion limit

  /// Whether errors name a line and column (a document) or a byte offset (a safetensors header).
  let reportsLines: Bool
  /// Whether a number beyond `Double`'s range (`1e400`) is an error rather than text kept
  /// as is: documents read as `JSONValue` need it, or it becomes infinity (serde_json also
  /// refuses it); safetensors headers read integers from the text and check them there.
  let requiresDoubleRange: Bool

  init(bytes: UnsafeRawBufferPointer, path: String, reportsLines: Bool = false, requiresDoubleRange: Bool = false) {
    self.bytes = bytes
    self.path = path
    self.reportsLines = reportsLines
    self.requiresDoubleRange = requiresDoubleRange
  }

  private func fail(_ what: String) -> DistillError {
    guard reportsLines else {
      return .malformed(path: path, detail: "header is not valid JSON: \(what) at byte \(position) of the header")
    }
    var line = 1
    var column = 1
    for i in 0..<min(position, bytes.count) {
      if bytes[i] == 0x0A {
        line += 1
        column = 1
      } else if bytes[i] & 0xC0 != 0x80 {
        column += 1
      }
    }
    return .malformed(path: path, detail: "not valid JSON: \(what) at line \(line), column \(column)")
  }

  /// A whole document: any JSON value with whitespace around it.
  mutating func parseAnyDocument() throws -> JSONNode {
    skipWhitespace()
    guard position < bytes.count else { throw fail("empty document") }
    let value = try parseValue()
    skipWhitespace()
    guard position == bytes.count else { throw fail("unexpected characters after the JSON value") }
    return value
  }

  /// The whole header: leading whitespace (accepted by the reference, for writers that pad to
  /// page alignment), an object, then only whitespace.
  mutating func parseDocument() throws -> JSONNode {
    skipWhitespace()
    guard position < bytes.count, bytes[position] == UInt8(ascii: "{") else {
      throw DistillError.malformed(path: path, detail: "header must be a JSON object starting with '{'")
    }
    let value = try parseValue()
    skipWhitespace()
    guard position == bytes.count else { throw fail("unexpected characters after the top-level object") }
    return value
  }

  private mutating func skipWhitespace() {
    while position < bytes.count {
      switch bytes[position] {
      case 0x20, 0x09, 0x0A, 0x0D: position += 1
      default: return
      }
    }
  }

  private mutating func expect(_ literal: String) throws {
    for byte in literal.utf8 {
      guard position < bytes.count, bytes[position] == byte else { throw fail("invalid literal") }
      position += 1
    }
  }

  private mutating func parseValue() throws -> JSONNode {
    skipWhitespace()
    guard position < bytes.count else { throw fail("unexpected end") }
    switch bytes[position] {
    case UInt8(ascii: "{"): return try parseObject()
    case UInt8(ascii: "["): return try parseArray()
    case UInt8(ascii: "\""): return .string(try parseString())
    case UInt8(ascii: "t"): try expect("true"); return .bool(true)
    case UInt8(ascii: "f"): try expect("false"); return .bool(false)
    case UInt8(ascii: "n"): try expect("null"); return .null
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
    default: throw fail("unexpected character '\(Unicode.Scalar(bytes[position]))'")
    }
  }

  private mutating func enter() throws {
    depth += 1
    guard depth <= Self.maxDepth else { throw fail("nested more than \(Self.maxDepth) levels deep") }
  }

  /// The items of the object or array whose opening bracket is at `position`: `item` parses
  /// each, and `,` or `closer` must follow it (`what` names the container in errors).
  private mutating func parseItems(closer: Unicode.Scalar, in what: String, _ item: (inout Self) throws -> Void) throws {
    try enter()
    position += 1  // '{' or '['
    skipWhitespace()
    let end = UInt8(ascii: closer)
    if position < bytes.count, bytes[position] == end {
      position += 1
      depth -= 1
      return
    }
    while true {
      try item(&self)
      skipWhitespace()
      guard position < bytes.count else { throw fail("unexpected end inside \(what)") }
      if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
      if bytes[position] == end { position += 1; break }
      throw fail("expected ',' or '\(closer)'")
    }
    depth -= 1
  }

  private mutating func parseObject() throws -> JSONNode {
    var members: [(key: String, value: JSONNode)] = []
    var seen = Set<String>()
    try parseItems(closer: "}", in: "an object") { parser in
      parser.skipWhitespace()
      guard parser.position < parser.bytes.count, parser.bytes[parser.position] == UInt8(ascii: "\"") else {
        throw parser.fail("expected a key string")
      }
      let keyStart = parser.position
      let key = try parser.parseString()
      guard seen.insert(key).inserted else {
        parser.position = keyStart
        throw parser.fail("duplicate key \"\(key)\"")
      }
      parser.skipWhitespace()
      guard parser.position < parser.bytes.count, parser.bytes[parser.position] == UInt8(ascii: ":") else {
        throw parser.fail("expected ':'")
      }
      parser.position += 1
      members.append((key, try parser.parseValue()))
    }
    return .object(members)
  }

  private mutating func parseArray() throws -> JSONNode {
    var items: [JSONNode] = []
    try parseItems(closer: "]", in: "an array") { items.append(try $0.parseValue()) }
    return .array(items)
  }

  private mutating func parseNumber() throws -> String {
    let start = position
    func digits() -> Int {
      let from = position
      while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
      return position - from
    }
    if bytes[position] == UInt8(ascii: "-") { position += 1 }
    let integerStart = position
    let integerDigits = digits()
    guard integerDigits > 0 else { throw fail("invalid number") }
    guard integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { throw fail("number with a leading zero") }
    if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
      position += 1
      guard digits() > 0 else { throw fail("invalid number") }
    }
    if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
      position += 1
      if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
        position += 1
      }
      guard digits() > 0 else { throw fail("invalid number") }
    }
    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    if requiresDoubleRange, !(Double(text)?.isFinite ?? false) {
      position = start
      throw fail("number \(text.count > 40 ? text.prefix(40) + "..." : text) is out of range")
    }
    return text
  }

  private mutating func parseHex4() throws -> UInt32 {
    guard position + 4 <= bytes.count else { throw fail("truncated \\u escape") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let byte = bytes[position]
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
      default: throw fail("invalid \\u escape")
      }
      value = value << 4 | UInt32(digit)
      position += 1
    }
    return value
  }

  private mutating func parseString() throws -> String {
    position += 1  // opening quote
    var result = ""
    var runStart = position
    func flush(_ parser: StrictJSONParser) {
      if runStart < parser.position {
        result += String(decoding: UnsafeRawBufferPointer(rebasing: parser.bytes[runStart..<parser.position]), as: UTF8.self)
      }
    }
    while true {
      guard position < bytes.count else { throw fail("unterminated string") }
      let byte = bytes[position]
      if byte == UInt8(ascii: "\"") {
        flush(self)
        position += 1
        return result
      }
      if byte < 0x20 { throw fail("control character in a string") }
      if byte != UInt8(ascii: "\\") {
        position += 1
        continue
      }
      flush(self)
      position += 1
      guard position < bytes.count else { throw fail("unterminated string") }
      let escape = bytes[position]
      position += 1
      switch escape {
      case UInt8(ascii: "\""): result += "\""
      case UInt8(ascii: "\\"): result += "\\"
      case UInt8(ascii: "/"): result += "/"
      case UInt8(ascii: "b"): result += "\u{8}"
      case UInt8(ascii: "f"): result += "\u{C}"
      case UInt8(ascii: "n"): result += "\n"
      case UInt8(ascii: "r"): result += "\r"
      case UInt8(ascii: "t"): result += "\t"
      case UInt8(ascii: "u"):
        var scalar = try parseHex4()
        if (0xD800..<0xDC00).contains(scalar) {
          guard position + 2 <= bytes.count, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u")
          else { throw fail("lone surrogate in a \\u escape") }
          position += 2
          let low = try parseHex4()
          guard (0xDC00..<0xE000).contains(low) else { throw fail("lone surrogate in a \\u escape") }
          scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw fail("lone surrogate in a \\u escape") }
        result.unicodeScalars.append(unicode)
      default: throw fail("invalid escape '\\\(Unicode.Scalar(escape))'")
      }
      runStart = position
    }
  }
}
