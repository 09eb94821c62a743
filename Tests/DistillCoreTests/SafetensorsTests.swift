import Foundation
import DistillTestSupport
import Testing

@testable import DistillCore

// MARK: Helpers

private func fixture(_ relative: String) -> String {
  Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(relative).path
}

/// A fresh, empty temporary directory for one test.
private func temporaryDirectory() throws -> String {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-tests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url.path
}

private func bytes(of path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

/// A file made of a declared header length (by default the header's), the header text and `data`.
private func craft(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
  let json = Array(header.utf8)
  return withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian, Array.init) + json + data
}

/// Reads `fileBytes` from a temporary file, expecting `.malformed` whose detail contains every fragment.
private func expectMalformed(
  _ fileBytes: [UInt8], _ fragments: String..., sourceLocation: SourceLocation = #_sourceLocation
) throws {
  let directory = try temporaryDirectory()
  defer { try? FileManager.default.removeItem(atPath: directory) }
  let path = directory + "/crafted.safetensors"
  try Data(fileBytes).write(to: URL(fileURLWithPath: path))
  do {
    let file = try SafetensorsFile.read(contentsOf: path)
    Issue.record("read succeeded with keys \(file.keys)", sourceLocation: sourceLocation)
  } catch let error as DistillError {
    guard case .malformed(let errorPath, let detail) = error else {
      Issue.record("expected .malformed, got \(error)", sourceLocation: sourceLocation)
      return
    }
    #expect(errorPath == path, sourceLocation: sourceLocation)
    for fragment in fragments {
      #expect(detail.contains(fragment), "\"\(detail)\" lacks \"\(fragment)\"", sourceLocation: sourceLocation)
    }
  }
}

private func bitPatterns(_ tensor: Tensor) -> [UInt32] { tensor.scalars.map(\.bitPattern) }

// MARK: Round trips

@Suite struct SafetensorsRoundTripTests {
  let specials: [Float] = [0, -0.0, 1, -1, .infinity, -.infinity, .nan, 65504, 6.1035156e-05, 5.9604645e-08, 3e-7, -1e-6]

  @Test func f32RoundTripIsExact() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/model.safetensors"
    let tensors: [String: Tensor] = [
      "conv.weight": testTensor([2, 3, 4], seed: 3, range: -100...100),
      "special": Tensor(specials + [.leastNonzeroMagnitude, .greatestFiniteMagnitude, Float(bitPattern: 0x0001_16C2)]),
      "scalar": Tensor(scalar: 0.1),
      "empty": Tensor.zeros([0, 5]),
      "quote\"d\nkey é\u{1}": Tensor([1]),
    ]
    try SafetensorsFile.write(tensors, metadata: ["format": "pt", "step": "12"], to: path)
    let file = try SafetensorsFile.read(contentsOf: path)
    #expect(file.metadata == ["format": "pt", "step": "12"])
    #expect(file.keys == tensors.keys.sorted())
    for (key, expected) in tensors {
      let loaded = try file.tensor(key)
      #expect(loaded.shape == expected.shape, "\(key)")
      #expect(bitPatterns(loaded) == bitPatterns(expected), "\(key)")
      #expect(file.info(key)?.dtype == .F32)
    }
    #expect(try file.tensors().count == tensors.count)
    #expect(file.info("missing") == nil)
    #expect(throws: DistillError.self) { try file.tensor("missing") }
  }

  @Test func f16RoundTripWithinHalfPrecision() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/half.safetensors"
    let random = testTensor([64], seed: 5, range: -1000...1000)
    try SafetensorsFile.write(["random": random, "special": Tensor(specials)], dtype: .F16, to: path)
    let file = try SafetensorsFile.read(contentsOf: path)
    #expect(file.info("random")?.dtype == .F16)
    expectClose(try file.tensor("random"), random, rtol: 1.0 / 2048, atol: 0)
    let special = try file.tensor("special").scalars
    // Exactly representable in binary16 (so back bit for bit), except 3e-7 and -1e-6: subnormal
    // halves, the nearest multiples of 2^-24.
    let step = Float(bitPattern: 0x3380_0000)
    let expected = Array(specials[0..<10]) + [5 * step, -17 * step]
    for (value, wanted) in zip(special, expected) {
      #expect(value.bitPattern == wanted.bitPattern || (value.isNaN && wanted.isNaN), "\(value) vs \(wanted)")
    }
  }

  @Test func bf16RoundTripWithinBFloatPrecision() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/bf16.safetensors"
    let random = testTensor([3, 50], seed: 9, range: -3e30...3e30)
    let special: [Float] = [0, -0.0, .infinity, -.infinity, .nan, 1, -2.5, Float(bitPattern: 0x0001_16C2)]
    try SafetensorsFile.write(["random": random, "special": Tensor(special)], dtype: .BF16, to: path)
    let file = try SafetensorsFile.read(contentsOf: path)
    #expect(file.info("random")?.dtype == .BF16)
    expectClose(try file.tensor("random"), random, rtol: 1.0 / 256, atol: 0)
    let loaded = try file.tensor("special").scalars
    #expect(loaded[0...3].map(\.bitPattern) == special[0...3].map(\.bitPattern))
    #expect(loaded[4].isNaN)
    #expect(loaded[5...6] == special[5...6])
    #expect(loaded[7] == Float(bitPattern: 0x0001_0000))  // Float(bitPattern: 0x0001_16C2) is 0x000116C2: rounds to 0x0001
  }

  @Test func halfConversionIsExactForEveryBitPattern() {
    for bits in 0...UInt16.max {
      let value = floatFromHalfBits(bits)
      if value.isNaN {
        #expect(halfBitsFromFloat(value) & 0x7E00 == 0x7E00)
      } else if halfBitsFromFloat(value) != bits {
        Issue.record("half \(bits) -> \(value) -> \(halfBitsFromFloat(value))")
      }
    }
    #expect(floatFromHalfBits(0x0001) == Float(bitPattern: 0x3380_0000))  // smallest subnormal, 2^-24
    #expect(floatFromHalfBits(0x7C00) == .infinity)
    #expect(floatFromHalfBits(0xFC00) == -.infinity)
    #expect(floatFromHalfBits(0x8000).bitPattern == (-Float.zero).bitPattern)
    #expect(halfBitsFromFloat(65520) == 0x7C00)  // tie above the largest half overflows
    #expect(halfBitsFromFloat(-1e6) == 0xFC00)
    #expect(halfBitsFromFloat(-.nan) == 0xFE00)
  }

  #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    @Test func halfRoundingMatchesFloat16() {
      // Float16(Float) rounds to nearest even; compare on a spread of bit patterns.
      var state: UInt32 = 12345
      for _ in 0..<200_000 {
        state = state &* 1_664_525 &+ 1_013_904_223
        let value = Float(bitPattern: state)
        if value.isNaN { continue }
        if halfBitsFromFloat(value) != Float16(value).bitPattern {
          Issue.record("\(value) (\(String(state, radix: 16))): \(halfBitsFromFloat(value)) vs \(Float16(value).bitPattern)")
          return
        }
      }
    }
  #endif

  @Test func bfloat16ConversionIsExactForEveryBitPattern() {
    for bits in 0...UInt16.max {
      let value = floatFromBFloat16Bits(bits)
      if value.isNaN { #expect(floatFromBFloat16Bits(bfloat16BitsFromFloat(value)).isNaN) }
      else if bfloat16BitsFromFloat(value) != bits { Issue.record("bf16 \(bits)") }
    }
    #expect(bfloat16BitsFromFloat(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie to even
    #expect(bfloat16BitsFromFloat(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
    #expect(bfloat16BitsFromFloat(Float(bitPattern: 0x7F7F_FFFF)) == 0x7F80)  // rounds to inf
    #expect(bfloat16BitsFromFloat(Float(bitPattern: 0x7F80_0001)) == 0x7FC0)  // NaN stays NaN
  }
}

// MARK: Interoperability with the Python library

@Suite struct SafetensorsPythonInteropTests {
  @Test func readsEveryDTypeWrittenByPython() throws {
    let file = try SafetensorsFile.read(contentsOf: fixture("safetensors/dtypes.safetensors"))
    #expect(file.metadata == ["format": "pt"])
    #expect(file.keys == ["bf16", "bool", "empty", "f16", "f32", "f64", "i32", "i64", "u8"])
    let dtypes = file.keys.map { file.info($0)!.dtype }
    #expect(dtypes == [.BF16, .BOOL, .F32, .F16, .F32, .F64, .I32, .I64, .U8])

    let f32 = try file.tensor("f32")
    #expect(f32.shape == [3, 3])
    let tiny = Float(bitPattern: 0x0001_16C2)  // Python's 1e-40 as a float32 subnormal
    let expectedF32: [Float] = [1.5, -2.25, 3.1415927, tiny, .infinity, -.infinity, .nan, -0.0, 16_777_216]
    #expect(zip(f32.scalars, expectedF32).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })

    let f16 = try file.tensor("f16").scalars
    let expectedF16: [Float] = [
      1, -2, 65504, 6.103515625e-05, 5.960464477539063e-08, 3.0517578125e-05, .infinity, -.infinity, .nan, -0.0,
      0.333251953125,
    ]
    #expect(zip(f16, expectedF16).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })

    let bf16 = try file.tensor("bf16")
    #expect(bf16.shape == [2, 3])
    #expect(bitPatterns(bf16) == bitPatterns(Tensor([1, -2, 3.3895313892515355e38, 0.0078125, .infinity, -0.0])))
    #expect(try file.tensor("f64").scalars == [Float(0.1), -.infinity, 2.5])  // -1e300 overflows Float
    #expect(try file.tensor("i64").scalars == [-3, 0, 1_099_511_627_776])
    let i32 = try file.tensor("i32")
    #expect(i32.shape == [] && i32.scalars == [-7])
    let u8 = try file.tensor("u8")
    #expect(u8.shape == [2, 2] && u8.scalars == [0, 255, 7, 128])
    #expect(try file.tensor("bool").scalars == [1, 0, 1])
    let empty = try file.tensor("empty")
    #expect(empty.shape == [0, 3] && empty.scalars.isEmpty)
  }

  /// The Swift writer reproduces torch + safetensors' files byte for byte, from the same F32 values.
  @Test(arguments: [SafetensorsDType.F32, .F16, .BF16])
  func writerMatchesPythonBytes(dtype: SafetensorsDType) throws {
    let source = try SafetensorsFile.read(contentsOf: fixture("safetensors/written_f32.safetensors"))
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/out.safetensors"
    try SafetensorsFile.write(try source.tensors(), metadata: source.metadata, dtype: dtype, to: path)
    let expected = try bytes(of: fixture("safetensors/written_\(dtype.rawValue.lowercased()).safetensors"))
    let written = try bytes(of: path)
    #expect(written.count == expected.count)
    if let index = zip(written, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
      Issue.record("first difference at byte \(index): \(written[index]) vs \(expected[index])")
    }
  }

  @Test func emptyFileMatchesPython() throws {
    // Python: save_file({}, path) writes length 8 and "{}" plus six spaces.
    let header = SafetensorsFile.headerBytes([:], names: [], metadata: [:], dtype: .F32)
    #expect(header == [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
  }
}

// MARK: Shared reference fixtures

@Suite struct SafetensorsFixtureTests {
  @Test func unet2dSmallWeights() throws {
    let file = try SafetensorsFile.read(contentsOf: fixture("unet2d-small/diffusion_pytorch_model.safetensors"))
    #expect(file.metadata == ["format": "pt"])
    #expect(file.keys.count == 144)
    #expect(file.keys.allSatisfy { file.info($0)!.dtype == .F32 })
    #expect(file.info("conv_in.weight")?.shape == [32, 3, 3, 3])
    #expect(file.info("mid_block.attentions.0.to_q.weight")?.shape == [64, 64])
    #expect(file.info("up_blocks.1.resnets.1.time_emb_proj.weight")?.shape == [32, 128])
    let bias = try file.tensor("conv_in.bias")
    #expect(Array(bias.scalars.prefix(3)) == [0.20523357391357422, -0.052016496658325195, -0.01987823285162449])
    let sum = try file.tensor("conv_in.weight").scalars.reduce(0.0) { $0 + Double($1) }
    #expect(abs(sum - 0.8129777058493346) < 1e-9)
    #expect(try file.tensors().count == 144)
  }

  @Test func unet2dPlainWeights() throws {
    let file = try SafetensorsFile.read(contentsOf: fixture("unet2d-plain/diffusion_pytorch_model.safetensors"))
    #expect(file.metadata == ["format": "pt"])
    #expect(file.keys.count == 148)
    #expect(file.info("conv_in.weight")?.shape == [16, 1, 3, 3])
    #expect(file.info("time_embedding.linear_1.weight")?.shape == [64, 16])
    #expect(try file.tensor("conv_out.bias").scalars == [-0.019407201558351517])
  }

  @Test(arguments: [("unet2d-small", [2, 3, 16, 16], 2), ("unet2d-plain", [3, 1, 8, 8], 3)])
  func ioFiles(folder: String, sampleShape: [Int], batch: Int) throws {
    let file = try SafetensorsFile.read(contentsOf: fixture("\(folder)/io.safetensors"))
    #expect(file.keys == ["output", "sample", "timestep"])
    #expect(file.info("sample")?.shape == sampleShape)
    #expect(file.info("output")?.shape == sampleShape)
    #expect(file.info("timestep")?.shape == [batch])
    if folder == "unet2d-small" {
      #expect(try file.tensor("timestep").scalars == [10, 987])
      #expect(Array(try file.tensor("sample").scalars.prefix(3)) == [0.4129362404346466, -0.7328116297721863, 0.5176811814308167])
    }
  }

  @Test func schedulers() throws {
    let file = try SafetensorsFile.read(contentsOf: fixture("schedulers/schedulers.safetensors"))
    #expect(file.keys.count == 19)
    #expect(file.metadata["ddim_epsilon_leading_step_t"] == "780")
    #expect(file.metadata["ddim_v_prediction_trailing_step_t"] == "799")
    #expect(file.info("ddpm_linear_alphas_cumprod")?.shape == [1000])
    #expect(file.info("euler_karras_timesteps")?.shape == [25])
    #expect(Array(try file.tensor("euler_karras_sigmas").scalars.prefix(2)) == [36.911922454833984, 30.088163375854492])
  }

  /// The 9.9 MB LPIPS weights are not committed: their header (the first 8 + N bytes) is, with
  /// Python's listing of the whole file; parsing the header alone must give that listing.
  @Test func lpipsAlexHeaderMatchesPythonListing() throws {
    let head = try bytes(of: fixture("lpips-alex-randbackbone/weights.header.bin"))
    let listingData = try Data(contentsOf: URL(fileURLWithPath: fixture("lpips-alex-randbackbone/weights.keys.json")))
    let listing = try #require(try JSONSerialization.jsonObject(with: listingData) as? [String: Any])
    let fileLength = try #require(listing["file_length"] as? Int)
    let tensors = try #require(listing["tensors"] as? [String: [String: Any]])
    let header = try head.withUnsafeBytes {
      try SafetensorsHeader.parse(fileHead: $0, fileLength: fileLength, path: "weights.safetensors")
    }
    #expect(header.headerLength + 8 == head.count)
    #expect(header.entries.keys.sorted() == tensors.keys.sorted())
    #expect(tensors.count == 17)
    for (key, expected) in tensors {
      #expect(header.entries[key]?.dtype.rawValue == expected["dtype"] as? String, "\(key)")
      #expect(header.entries[key]?.shape == expected["shape"] as? [Int], "\(key)")
    }
  }
}

// MARK: Validation: one test per rule of the reference reader

@Suite struct SafetensorsValidationTests {
  /// A valid one-tensor header for `w` (F32, shape [2]), with `extra` spliced into the entry.
  func entry(_ fields: String) -> String { "{\"w\":{\(fields)}}" }
  let eightBytes = [UInt8](repeating: 0, count: 8)

  @Test func acceptsAValidCraftedFile() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/ok.safetensors"
    // Leading and trailing whitespace around the object, as the reference reader allows.
    let header = " \n{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":null},\"__metadata__\":null}\t  "
    let data: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]
    try Data(craft(header, data: data)).write(to: URL(fileURLWithPath: path))
    let file = try SafetensorsFile.read(contentsOf: path)
    #expect(file.keys == ["w"] && file.metadata.isEmpty)
    #expect(try file.tensor("w").scalars == [1, 2])
    try file.withUnsafeBytes(of: "w") { #expect(Array($0) == data) }
  }

  @Test func rejectsFileShorterThan8Bytes() throws {
    try expectMalformed([], "0 bytes", "shorter than the 8-byte header length")
    try expectMalformed([1, 0, 0], "3 bytes", "shorter than the 8-byte header length")
  }

  @Test func rejectsHeaderTooLarge() throws {
    try expectMalformed(craft("{}", declaredLength: 100_000_001), "header too large", "100000001")
    try expectMalformed(craft("{}", declaredLength: UInt64.max), "header too large")
  }

  @Test func rejectsHeaderPastEndOfFile() throws {
    try expectMalformed(craft("{}", declaredLength: 64), "header length 64 goes past the end of the file (10 bytes)")
  }

  @Test func rejectsInvalidUTF8() throws {
    let json = Array("{\"w".utf8) + [0xFF] + Array("\":1}".utf8)
    try expectMalformed(withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json, "header is not valid UTF-8")
  }

  @Test func rejectsHeaderNotStartingWithBrace() throws {
    try expectMalformed(craft("[]      "), "must be a JSON object starting with '{'")
    try expectMalformed(craft("        "), "must be a JSON object starting with '{'")
    try expectMalformed(craft("x{}"), "must be a JSON object starting with '{'")
  }

  @Test func rejectsInvalidJSON() throws {
    try expectMalformed(craft("{\"w\":"), "header is not valid JSON", "unexpected end")
    try expectMalformed(craft("{\"w\":{},}"), "header is not valid JSON")
    try expectMalformed(craft("{\"w\":01}"), "header is not valid JSON", "leading zero")
    try expectMalformed(craft("{\"a\\q\":1}"), "header is not valid JSON", "invalid escape")
    try expectMalformed(craft("{\"\\ud800\":1}"), "lone surrogate")
    try expectMalformed(craft("{\"a\nb\":1}"), "control character")
  }

  @Test func rejectsTrailingCharactersAfterTheObject() throws {
    try expectMalformed(craft("{} {}"), "unexpected characters after the top-level object")
  }

  @Test func rejectsDeepNesting() throws {
    let deep = "{\"w\":" + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}"
    try expectMalformed(craft(deep), "nested more than 128 levels")
  }

  @Test func rejectsDuplicateKeys() throws {
    let w = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
    try expectMalformed(craft("{\"w\":\(w),\"w\":\(w)}", data: eightBytes), "duplicate key \"w\"")
    try expectMalformed(
      craft(entry("\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]"), data: [0, 0, 0, 0]),
      "duplicate key \"dtype\"")
  }

  @Test(arguments: ["dtype", "shape", "data_offsets"])
  func rejectsEntryMissingField(_ missing: String) throws {
    let fields = ["\"dtype\":\"F32\"", "\"shape\":[1]", "\"data_offsets\":[0,4]"].filter { !$0.contains("\"\(missing)\"") }
    try expectMalformed(craft(entry(fields.joined(separator: ",")), data: [0, 0, 0, 0]), "tensor 'w': missing \"\(missing)\"")
  }

  @Test func rejectsEntryFieldsOfWrongType() throws {
    let data: [UInt8] = [0, 0, 0, 0]
    try expectMalformed(craft("{\"w\":[1]}", data: data), "tensor 'w': entry must be an object, found an array")
    try expectMalformed(craft(entry("\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]"), data: data),
      "\"dtype\" must be a string, found the number 32")
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]"), data: data),
      "\"shape\" must be an array")
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]"), data: data),
      "\"shape\" holds 1.0, not an integer")
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]"), data: data),
      "\"shape\" must hold non-negative integers, found null")
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]"), data: data),
      "\"data_offsets\" must hold 2 integers [begin, end], found 1")
  }

  @Test func rejectsUnknownDType() throws {
    try expectMalformed(
      craft(entry("\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]"), data: .init(repeating: 0, count: 16)),
      "tensor 'w': unknown dtype 'F128'")
  }

  @Test func rejectsNegativeShape() throws {
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]")),
      "tensor 'w': \"shape\" holds the negative number -1")
  }

  @Test func rejectsOverflowingShape() throws {
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]")),
      "tensor 'w': shape [4294967296, 4294967296] of F32 overflows the element count")
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]")),
      "99999999999999999999, which is too large")
  }

  @Test func rejectsOffsetsEndBeforeBegin() throws {
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]"), data: eightBytes),
      "tensor 'w': data offsets [8, 4): end is before begin")
  }

  @Test func rejectsOffsetsOutsideTheDataBuffer() throws {
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]"), data: eightBytes),
      "tensor 'w': data offsets [0, 16) go past the end of the data buffer (8 bytes)")
  }

  @Test func rejectsByteSizeNotMatchingShape() throws {
    try expectMalformed(
      craft(entry("\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]"), data: .init(repeating: 0, count: 12)),
      "tensor 'w': data offsets [0, 12) hold 12 bytes, shape [2, 2] of F32 needs 16")
  }

  @Test func rejectsSubByteTensorNotFillingWholeBytes() throws {
    try expectMalformed(craft(entry("\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]"), data: [0]),
      "shape [3] of F4 is 12 bits, not a whole number of bytes")
  }

  @Test func rejectsGapBetweenTensors() throws {
    let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}"
    try expectMalformed(craft(header, data: .init(repeating: 0, count: 12)),
      "gap in the data buffer: bytes [4, 8) after tensor 'a' belong to no tensor")
  }

  @Test func rejectsGapAtTheStartOfTheBuffer() throws {
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]"), data: eightBytes),
      "gap in the data buffer: bytes [0, 4) at the start of the data buffer belong to no tensor")
  }

  @Test func rejectsOverlappingTensors() throws {
    let header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
    try expectMalformed(craft(header, data: eightBytes),
      "tensor 'b': data offsets [4, 8) overlap tensor 'a', which ends at 8")
  }

  @Test func rejectsTrailingBytesInTheDataBuffer() throws {
    try expectMalformed(craft(entry("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]"), data: eightBytes),
      "data buffer is 8 bytes but the tensors cover only [0, 4): 4 trailing bytes belong to no tensor")
    try expectMalformed(craft("{}", data: [1]), "1 trailing bytes")
  }

  @Test func rejectsMetadataThatIsNotAStringMap() throws {
    try expectMalformed(craft("{\"__metadata__\":{\"format\":\"pt\",\"step\":3}}"),
      "__metadata__ must map strings to strings, but 'step' is the number 3")
    try expectMalformed(
      craft("{\"__metadata__\":[\"pt\"]}"), "__metadata__ must be an object mapping strings to strings, found an array")
  }

  @Test func zeroSizedTensorsAndScalarsAreValid() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/zero.safetensors"
    let header = "{\"e\":{\"dtype\":\"F16\",\"shape\":[0,7],\"data_offsets\":[0,0]},"
      + "\"s\":{\"dtype\":\"I8\",\"shape\":[],\"data_offsets\":[0,1]},"
      + "\"f8\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[1,2]}}"
    try Data(craft(header, data: [0xFE, 0x38])).write(to: URL(fileURLWithPath: path))
    let file = try SafetensorsFile.read(contentsOf: path)
    #expect(try file.tensor("e").shape == [0, 7])
    #expect(try file.tensor("s").scalars == [-2])
    // A valid but unconvertible dtype: inspectable, and `tensor` says why it cannot convert.
    #expect(file.info("f8")?.dtype == .F8_E4M3)
    #expect(throws: DistillError.invalidValue(
      location: "\(path): tensor 'f8'", expected: "a dtype convertible to Float32", found: "F8_E4M3")) {
      try file.tensor("f8")
    }
  }

  @Test func missingOrUnreadableFileIsAnIOError() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    #expect {
      try SafetensorsFile.read(contentsOf: directory + "/absent.safetensors")
    } throws: { error in
      guard case .io(let path, let reason)? = error as? DistillError else { return false }
      return path.hasSuffix("absent.safetensors") && reason.contains("cannot open")
    }
    #expect(throws: DistillError.io(path: directory, reason: "not a regular file")) {
      try SafetensorsFile.read(contentsOf: directory)
    }
  }

  /// Random corruptions of a valid file are rejected or accepted, never a crash.
  @Test func corruptedHeadersNeverCrash() throws {
    let valid = craft(
      "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
        + "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
      data: .init(repeating: 0x3F, count: 12))
    var state: UInt64 = 42
    func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(bound))
    }
    let interesting: [UInt8] = Array("{}[]\",:-0123456789eE.\\u \u{7F}".utf8) + [0, 0xFF, 0xC3]
    var accepted = 0
    for _ in 0..<3000 {
      var bytes = valid
      for _ in 0...next(3) {
        let index = next(bytes.count)
        switch next(3) {
        case 0: bytes[index] = interesting[next(interesting.count)]
        case 1: bytes.remove(at: index)
        default: bytes.insert(interesting[next(interesting.count)], at: index)
        }
      }
      let count = bytes.count
      if (try? bytes.withUnsafeBytes({ try SafetensorsHeader.parse(fileHead: $0, fileLength: count, path: "fuzz") })) != nil {
        accepted += 1
      }
    }
    #expect(accepted < 3000)
  }
}

// MARK: Writing

@Suite struct SafetensorsWriteTests {
  @Test func overwritesAtomicallyAndLeavesNoTemporaryFile() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/w.safetensors"
    try SafetensorsFile.write(["a": Tensor([1, 2])], to: path)
    try SafetensorsFile.write(["b": Tensor([3])], to: path)
    #expect(try SafetensorsFile.read(contentsOf: path).keys == ["b"])
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["w.safetensors"])
  }

  @Test func failedWriteLeavesTheTargetUntouched() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // The target is a non-empty folder, so moving the finished file into place fails.
    let path = directory + "/w.safetensors"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    try SafetensorsFile.write(["a": Tensor([1, 2])], to: path + "/inside.safetensors")
    let before = try bytes(of: path + "/inside.safetensors")
    #expect(throws: DistillError.self) { try SafetensorsFile.write(["b": Tensor([3])], to: path) }
    #expect(try bytes(of: path + "/inside.safetensors") == before)
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["w.safetensors"])
    #expect(throws: DistillError.self) {
      try SafetensorsFile.write(["b": Tensor([3])], to: directory + "/no/such/dir.safetensors")
    }
  }

  @Test func rejectsUnwritableDTypeAndReservedName() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/w.safetensors"
    #expect(throws: DistillError.invalidValue(location: path, expected: "dtype F32, F16 or BF16", found: "I32")) {
      try SafetensorsFile.write(["a": Tensor([1])], dtype: .I32, to: path)
    }
    #expect(throws: DistillError.self) { try SafetensorsFile.write(["__metadata__": Tensor([1])], to: path) }
    #expect(!FileManager.default.fileExists(atPath: path))
  }

  @Test func headerIsPaddedToAMultipleOf8() {
    for length in 0..<10 {
      let name = String(repeating: "k", count: length)
      let header = SafetensorsFile.headerBytes(["\(name)": Tensor([1])], names: [name], metadata: [:], dtype: .F16)
      #expect((header.count - 8) % 8 == 0)
      #expect(header.last == UInt8(ascii: " ") || header.last == UInt8(ascii: "}"))
    }
  }
}

// MARK: Load-time checks: finiteness and room for a model

@Suite struct SafetensorsCheckTests {
  /// Writes `fileBytes` to a temporary file and opens it.
  func open(_ fileBytes: [UInt8], _ body: (SafetensorsFile) throws -> Void) throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/weights.safetensors"
    try Data(fileBytes).write(to: URL(fileURLWithPath: path))
    try body(try SafetensorsFile.read(contentsOf: path))
  }

  func littleEndian<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }
  }

  @Test func findsTheFirstNaNOrInfinityInEveryFloatDType() throws {
    let header = """
      {"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},\
      "b":{"dtype":"F16","shape":[2],"data_offsets":[12,16]},\
      "c":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},\
      "d":{"dtype":"F64","shape":[2],"data_offsets":[20,36]},\
      "e":{"dtype":"I32","shape":[1],"data_offsets":[36,40]}}
      """
    let data =
      littleEndian([Float(1).bitPattern, Float(2).bitPattern, Float.nan.bitPattern])
      + littleEndian([UInt16(0x3C00), 0xFC00])  // 1, -inf
      + littleEndian([UInt16(0x3F80), 0x7FC1])  // 1, NaN
      + littleEndian([Double(1).bitPattern, Double(1e300).bitPattern])  // 1e300 reads as +inf in Float
      + littleEndian([Int32.max])
    try open(craft(header, data: data)) { file in
      #expect(try file.firstNonFinite(among: ["a"])?.index == 2)
      #expect(try file.firstNonFinite(among: ["a"])?.value.isNaN == true)
      #expect(try file.firstNonFinite(among: ["b"]) == NonFiniteElement(key: "b", index: 1, value: -.infinity))
      #expect(try file.firstNonFinite(among: ["c"])?.index == 1)
      #expect(try file.firstNonFinite(among: ["d"]) == NonFiniteElement(key: "d", index: 1, value: .infinity))
      #expect(try file.firstNonFinite(among: ["e"]) == nil)
      // In key order, and agreeing with what `tensor(_:)` converts.
      #expect(try file.firstNonFinite()?.key == "a")
      #expect(try file.tensor("d").scalars[1] == .infinity)
      do {
        try file.requireFinite(["e", "d"])
        Issue.record("requireFinite accepted an infinite F64")
      } catch let error as DistillError {
        #expect(error.description.contains("tensor 'd' holds inf at element 1"), "\(error)")
      }
      try file.requireFinite(["e"])
    }
  }

  @Test func findsTheInfinitiesOfThePythonFixture() throws {
    // "edge" holds overflowed values from element 7 on; the other tensors are finite.
    try open(try bytes(of: fixture("safetensors/written_f16.safetensors"))) { file in
      #expect(try file.firstNonFinite() == NonFiniteElement(key: "edge", index: 7, value: .infinity))
      #expect(try file.firstNonFinite(among: ["layer.bias", "layer.weight", "scalar"]) == nil)
      try file.requireFinite(["layer.weight"])
    }
  }

  @Test func requireRoomRefusesAModelLargerThanTheFile() throws {
    let path = fixture("safetensors/written_f32.safetensors")  // 484 bytes
    try SafetensorsFile.requireRoom(forParameters: 484, path: path, model: "m")
    #expect(throws: DistillError.self) { try SafetensorsFile.requireRoom(forParameters: 485, path: path, model: "m") }
    do {
      try SafetensorsFile.requireRoom(forParameters: 1 << 40, path: path, model: "the UNet of config.json")
    } catch let error as DistillError {
      #expect(error.description.contains("484 bytes, too small for the 1099511627776 parameters of the UNet of config.json"))
    }
  }
}
