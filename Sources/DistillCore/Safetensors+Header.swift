/// The safetensors header: a small JSON parser and the validation rules of the reference
/// Rust reader (`SafeTensors::read_metadata` and `Metadata::validate` in safetensors'
/// `tensor.rs`). Every failure throws `DistillError.malformed(path:detail:)` whose detail
/// says what is wrong; nothing here traps on any input.
///
/// The JSON itself is read by `StrictJSONParser` (`Safetensors+JSON.swift`).

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

    var parser = StrictJSONParser(bytes: json, path: path)
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

  private static func parseMetadata(_ value: JSONNode, fail: (String) -> DistillError) throws -> [String: String] {
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
    _ name: String, _ value: JSONNode, dataLength: Int, fail: (String) -> DistillError
  ) throws -> SafetensorsTensorInfo {
    func bad(_ detail: String) -> DistillError { fail("tensor '\(name)': \(detail)") }
    guard case .object(let members) = value else { throw bad("entry must be an object, found \(value.kind)") }
    func field(_ field: String) throws -> JSONNode {
      guard let found = members.first(where: { $0.key == field }) else { throw bad("missing \"\(field)\"") }
      return found.value
    }
    func integers(_ field: String, _ json: JSONNode) throws -> [Int] {
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
        throw fail(
          "tensor '\(name)': data offsets [\(begin), \(end)) overlap tensor '\(previous!)', which ends at \(position)")
      }
      position = end
      previous = name
    }
    guard position == dataLength else {
      throw fail(
        "data buffer is \(dataLength) bytes but the tensors cover only [0, \(position)): "
          + "\(dataLength - position) trailing bytes belong to no tensor")
    }
  }
}

extension Character {
  fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
