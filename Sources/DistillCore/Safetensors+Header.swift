/// The safetensors header: a small JSON parser and the validation rules of the reference
/// Rust reader (`SafeTensors::read_metadata` and `Metadata::validate` in safetensors'
/// `tensor.rs`). Every failure throws `DistillError.malformed(path:detail:)` whose detail
/// says what is wrong; nothing here traps on any input.
///
/// A hand parser is used rather than `JSONSerialization` so that duplicate keys are rejected
/// (as the reference does), integers are read exactly (no detour through `Double`), and
/// nesting depth is bounded (no stack overflow on `[[[[...`).

/// The largest header the reference reader accepts (`MAX_HEADER_SIZE`).
let safetensorsMaxHeaderLength: UInt64 = 100_000_000

struct SafetensorsHeader {
  /// `N`, the JSON header's length in bytes (the data buffer starts at `8 + N`).
  var headerLength: Int
  var metadata: [String: String]
  var entries: [String: SafetensorsTensorInfo]

  /// Parses and validates the header at the start of a file of `fileLength` bytes.
  ///
  /// `fileHead` holds at least the file's first `8 + N` bytes (normally the whole mapped file).
  static func parse(fileHead: UnsafeRawBufferPointer, fileLength: Int, path: String) throws -> SafetensorsHeader {
    func fail(_ detail: String) -> DistillError { .malformed(path: path, detail: detail) }
    guard fileLength >= 8, fileHead.count >= 8 else {
      throw fail("file is \(fileLength) bytes, shorter than the 8-byte header length")
    }
    let declared = UInt64(littleEndian: fileHead.loadUnaligned(as: UInt64.self))
    guard declared <= safetensorsMaxHeaderLength else {
      throw fail("header too large: \(declared) bytes, the limit is \(safetensorsMaxHeaderLength)")
    }
    let n = Int(declared)
    guard 8 + n <= fileLength, 8 + n <= fileHead.count else {
      throw fail("header length \(n) goes past the end of the file (\(fileLength) bytes)")
    }
    let json = UnsafeRawBufferPointer(rebasing: fileHead[8..<(8 + n)])
    guard String(validating: json, as: UTF8.self) != nil else { throw fail("header is not valid UTF-8") }

    var parser = SafetensorsJSONParser(bytes: json, path: path)
    let root = try parser.parseDocument()
    guard case .object(let members) = root else { throw fail("header must be a JSON object starting with '{'") }

    let dataLength = fileLength - 8 - n
    var metadata: [String: String] = [:]
    var entries: [String: SafetensorsTensorInfo] = [:]
    for (key, value) in members {
      if key == "__metadata__" {
        metadata = try parseMetadata(value, fail: fail)
      } else {
        entries[key] = try parseEntry(key, value, dataLength: dataLength, fail: fail)
      }
    }
    try checkTiling(entries, dataLength: dataLength, fail: fail)
    return SafetensorsHeader(headerLength: n, metadata: metadata, entries: entries)
  }

  private static func parseMetadata(_ value: SafetensorsJSON, fail: (String) -> DistillError) throws -> [String: String] {
    if case .null = value { return [:] }  // the reference's `Option<HashMap>` accepts null
    guard case .object(let members) = value else {
      throw fail("__metadata__ must be an object mapping strings to strings, found \(value.kind)")
    }
    var metadata: [String: String] = [:]
    for (key, item) in members {
      guard case .string(let text) = item else {
        throw fail("__metadata__ must map strings to strings, but '\(key)' is \(item.kind)")
      }
      metadata[key] = text
    }
    return metadata
  }

  private static func parseEntry(
    _ name: String, _ value: SafetensorsJSON, dataLength: Int, fail: (String) -> DistillError
  ) throws -> SafetensorsTensorInfo {
    func bad(_ detail: String) -> DistillError { fail("tensor '\(name)': \(detail)") }
    guard case .object(let members) = value else { throw bad("entry must be an object, found \(value.kind)") }
    func field(_ field: String) throws -> SafetensorsJSON {
      guard let found = members.first(where: { $0.key == field }) else { throw bad("missing \"\(field)\"") }
      return found.value
    }
    func integers(_ field: String, _ json: SafetensorsJSON) throws -> [Int] {
      guard case .array(let items) = json else { throw bad("\"\(field)\" must be an array, found \(json.kind)") }
      return try items.map { item in
        guard case .number(let text) = item else {
          throw bad("\"\(field)\" must hold non-negative integers, found \(item.kind)")
        }
        if text.hasPrefix("-") { throw bad("\"\(field)\" holds the negative number \(text)") }
        guard text.allSatisfy(\.isASCIIDigit) else { throw bad("\"\(field)\" holds \(text), not an integer") }
        guard let number = Int(text) else { throw bad("\"\(field)\" holds \(text), which is too large") }
        return number
      }
    }

    let dtypeJSON = try field("dtype")
    guard case .string(let dtypeName) = dtypeJSON else { throw bad("\"dtype\" must be a string, found \(dtypeJSON.kind)") }
    guard let dtype = SafetensorsDType(rawValue: dtypeName) else { throw bad("unknown dtype '\(dtypeName)'") }
    let shape = try integers("shape", try field("shape"))
    let offsets = try integers("data_offsets", try field("data_offsets"))
    guard offsets.count == 2 else { throw bad("\"data_offsets\" must hold 2 integers [begin, end], found \(offsets.count)") }
    let (begin, end) = (offsets[0], offsets[1])
    guard end >= begin else { throw bad("data offsets [\(begin), \(end)): end is before begin") }
    guard end <= dataLength else {
      throw bad("data offsets [\(begin), \(end)) go past the end of the data buffer (\(dataLength) bytes)")
    }

    var bits = dtype.bitWidth
    var overflow = false
    for dimension in shape where !overflow {
      (bits, overflow) = bits.multipliedReportingOverflow(by: dimension)
    }
    guard !overflow else { throw bad("shape \(shape) of \(dtype) overflows the element count") }
    guard bits % 8 == 0 else { throw bad("shape \(shape) of \(dtype) is \(bits) bits, not a whole number of bytes") }
    guard end - begin == bits / 8 else {
      throw bad("data offsets [\(begin), \(end)) hold \(end - begin) bytes, shape \(shape) of \(dtype) needs \(bits / 8)")
    }
    return SafetensorsTensorInfo(dtype: dtype, shape: shape, dataOffsets: begin..<end)
  }

  /// Sorted by offset, the tensors must cover the data buffer exactly: no gap, no overlap,
  /// nothing left over (the reference's rule against polyglot files).
  private static func checkTiling(
    _ entries: [String: SafetensorsTensorInfo], dataLength: Int, fail: (String) -> DistillError
  ) throws {
    let sorted = entries.sorted {
      ($0.value.dataOffsets.lowerBound, $0.value.dataOffsets.upperBound, $0.key)
        < ($1.value.dataOffsets.lowerBound, $1.value.dataOffsets.upperBound, $1.key)
    }
    var position = 0
    var previous: String?
    for (name, info) in sorted {
      let (begin, end) = (info.dataOffsets.lowerBound, info.dataOffsets.upperBound)
      if begin > position {
        let after = previous.map { "after tensor '\($0)'" } ?? "at the start of the data buffer"
        throw fail("gap in the data buffer: bytes [\(position), \(begin)) \(after) belong to no tensor")
      }
      if begin < position {
        throw fail("tensor '\(name)': data offsets [\(begin), \(end)) overlap tensor '\(previous!)', which ends at \(position)")
      }
      position = end
      previous = name
    }
    guard position == dataLength else {
      throw fail("data buffer is \(dataLength) bytes but the tensors cover only [0, \(position)): \(dataLength - position) trailing bytes belong to no tensor")
    }
  }
}

extension Character {
  fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

// MARK: JSON

enum SafetensorsJSON {
  case object([(key: String, value: SafetensorsJSON)])
  case array([SafetensorsJSON])
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
struct SafetensorsJSONParser {
  let bytes: UnsafeRawBufferPointer
  let path: String
  var position = 0
  var depth = 0
  static let maxDepth = 128  // serde_json's default recursion limit

  init(bytes: UnsafeRawBufferPointer, path: String) {
    self.bytes = bytes
    self.path = path
  }

  private func fail(_ what: String) -> DistillError {
    .malformed(path: path, detail: "header is not valid JSON: \(what) at byte \(position) of the header")
  }

  /// The whole header: leading whitespace (accepted by the reference, for writers that pad to
  /// page alignment), an object, then only whitespace.
  mutating func parseDocument() throws -> SafetensorsJSON {
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

  private mutating func parseValue() throws -> SafetensorsJSON {
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

  private mutating func parseObject() throws -> SafetensorsJSON {
    try enter()
    position += 1  // '{'
    var members: [(key: String, value: SafetensorsJSON)] = []
    var seen = Set<String>()
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
      position += 1
      depth -= 1
      return .object(members)
    }
    while true {
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a key string") }
      let keyStart = position
      let key = try parseString()
      guard seen.insert(key).inserted else {
        position = keyStart
        throw fail("duplicate key \"\(key)\"")
      }
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
      position += 1
      members.append((key, try parseValue()))
      skipWhitespace()
      guard position < bytes.count else { throw fail("unexpected end inside an object") }
      if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
      if bytes[position] == UInt8(ascii: "}") { position += 1; break }
      throw fail("expected ',' or '}'")
    }
    depth -= 1
    return .object(members)
  }

  private mutating func parseArray() throws -> SafetensorsJSON {
    try enter()
    position += 1  // '['
    var items: [SafetensorsJSON] = []
    skipWhitespace()
    if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
      position += 1
      depth -= 1
      return .array(items)
    }
    while true {
      items.append(try parseValue())
      skipWhitespace()
      guard position < bytes.count else { throw fail("unexpected end inside an array") }
      if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
      if bytes[position] == UInt8(ascii: "]") { position += 1; break }
      throw fail("expected ',' or ']'")
    }
    depth -= 1
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
    return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
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
    func flush(_ parser: SafetensorsJSONParser) {
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
