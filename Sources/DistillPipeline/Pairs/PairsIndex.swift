import DistillCore
import Foundation

/// The index of a pairs folder, `pairs.json`: what the shards hold and how they were made.
///
/// ```json
/// {"format": "distillery-pairs", "version": 1, "sampleShape": [2], "count": 64,
///  "teacher": "GaussianMixtureDenoiser(...)", "sampler": "ddim", "steps": 50, "seed": 0,
///  "noise": "per-sample-fork", "batchSize": 64, "clipSample": false,
///  "shards": [{"file": "shard-00000.safetensors", "count": 64}]}
/// ```
///
/// Each shard holds float32 tensors `noise` and `samples`, both `[count] + sampleShape`, and,
/// for a class-conditional teacher (`"classes": C`, with its `"guidance"` scale), `labels`
/// `[count]` (class indices as float32); for a text-to-image teacher (`"prompts": [...]`, the
/// prompt texts, with `"guidance"`) each shard holds `prompts` `[count]` (indices into that
/// list as float32) and the folder holds ``promptEmbeddingsFileName``, the teacher's embedding
/// of each prompt. Pair `i` of the folder is row `i` of the concatenated shards.
/// docs/precompute.md is the reference.
public struct PairsIndex: Equatable, Sendable {
  public static let fileName = "pairs.json"
  /// The prompts' embeddings of text-to-image pairs: `embeddings` `[prompts, L, D]`, float32.
  public static let promptEmbeddingsFileName = "prompt-embeddings.safetensors"
  public static let format = "distillery-pairs"
  public static let version = 1
  /// How the noise of pair `i` is drawn: `RandomGenerator(seed: seed).fork(i)`.
  public static let noiseScheme = "per-sample-fork"

  public struct Shard: Equatable, Sendable {
    public var file: String
    public var count: Int
  }

  public var sampleShape: [Int]
  public var count: Int
  public var teacher: String
  public var sampler: String
  public var steps: Int
  public var seed: UInt64
  public var batchSize: Int
  public var clipSample: Bool
  /// The teacher's classes when the pairs are class-conditional (each shard then holds `labels`).
  public var classes: Int?
  /// The prompts of text-to-image pairs (each shard then holds `prompts`): pair `i` has prompt
  /// `i mod prompts.count`.
  public var prompts: [String]?
  /// The classifier-free guidance scale the samples were drawn with (1 = none).
  public var guidance: Double = 1
  public var shards: [Shard]

  /// The name of shard `number`: `shard-00000.safetensors`.
  public static func shardName(_ number: Int) -> String { String(format: "shard-%05d.safetensors", number) }

  /// Whether `other` describes the same pairs (what was drawn, not how it was split).
  public func samePairs(as other: PairsIndex) -> Bool {
    sampleShape == other.sampleShape && count == other.count && teacher == other.teacher
      && sampler == other.sampler && steps == other.steps && seed == other.seed && batchSize == other.batchSize
      && clipSample == other.clipSample && classes == other.classes && prompts == other.prompts
      && guidance == other.guidance
  }

  public var json: JSONValue {
    var object: [String: JSONValue] = [
      "format": .string(Self.format), "version": .number(Double(Self.version)),
      "sampleShape": .array(sampleShape.map { .number(Double($0)) }), "count": .number(Double(count)),
      "teacher": .string(teacher), "sampler": .string(sampler), "steps": .number(Double(steps)),
      "seed": .number(Double(seed)), "noise": .string(Self.noiseScheme), "batchSize": .number(Double(batchSize)),
      "clipSample": .bool(clipSample),
      "shards": .array(shards.map { .object(["file": .string($0.file), "count": .number(Double($0.count))]) }),
    ]
    if let classes { object["classes"] = .number(Double(classes)) }
    if let prompts { object["prompts"] = .array(prompts.map { .string($0) }) }
    if classes != nil || prompts != nil { object["guidance"] = .number(guidance) }
    return .object(object)
  }

  /// Reads `pairs.json` in `folder`.
  /// - Throws: ``DistillError`` naming the file and the key that is missing or wrong.
  public static func read(folder: String) throws -> PairsIndex {
    let path = (folder as NSString).appendingPathComponent(fileName)
    guard let data = FileManager.default.contents(atPath: path) else {
      let reason =
        FileManager.default.fileExists(atPath: folder)
        ? "no \(fileName): not a pairs folder (write one with `pipeline precompute`)"
        : "no such pairs folder"
      throw DistillError.io(path: FileManager.default.fileExists(atPath: folder) ? path : folder, reason: reason)
    }
    guard case .object(let object) = try JSONValue.parse(data, source: path) else {
      throw DistillError.malformed(path: path, detail: "expected a JSON object")
    }
    func fail(_ key: String, _ expected: String) -> DistillError {
      .invalidValue(location: "\(path): \(key)", expected: expected, found: object[key]?.summary ?? "nothing")
    }
    func integer(_ key: String, _ range: ClosedRange<Int>) throws -> Int {
      guard case .number(let n)? = object[key], n == n.rounded(), n >= Double(range.lowerBound),
        n <= Double(range.upperBound)
      else { throw fail(key, "an integer in [\(range.lowerBound), \(range.upperBound)]") }
      return Int(n)
    }
    func string(_ key: String) throws -> String {
      guard case .string(let s)? = object[key] else { throw fail(key, "a string") }
      return s
    }
    guard case .string(Self.format)? = object["format"] else { throw fail("format", "\"\(Self.format)\"") }
    guard try integer("version", 0...Int(Int32.max)) == Self.version else {
      throw fail("version", "\(Self.version) (this Distillery reads version \(Self.version))")
    }
    guard case .array(let dims)? = object["sampleShape"], !dims.isEmpty,
      dims.allSatisfy({ if case .number(let n) = $0 { return n >= 1 && n == n.rounded() } else { return false } })
    else { throw fail("sampleShape", "an array of positive integers") }
    let sampleShape = dims.map { if case .number(let n) = $0 { return Int(n) } else { return 0 } }
    let count = try integer("count", 1...Int(Int32.max))
    guard case .array(let items)? = object["shards"], !items.isEmpty else {
      throw fail("shards", "a non-empty array of {\"file\", \"count\"}")
    }
    var shards: [Shard] = []
    for (i, item) in items.enumerated() {
      guard case .object(let shard) = item, case .string(let file)? = shard["file"], !file.contains("/"),
        case .number(let n)? = shard["count"], n >= 1, n == n.rounded()
      else {
        throw DistillError.invalidValue(
          location: "\(path): shards[\(i)]", expected: "{\"file\": a file name, \"count\": a positive integer}",
          found: item.summary)
      }
      shards.append(Shard(file: file, count: Int(n)))
    }
    let total = shards.reduce(0) { $0 + $1.count }
    guard total == count else {
      throw DistillError.invalidValue(
        location: "\(path): shards", expected: "shard counts summing to count (\(count))", found: "\(total)")
    }
    let clipSample: Bool
    switch object["clipSample"] {
    case .bool(let b)?: clipSample = b
    case nil: clipSample = false
    default: throw fail("clipSample", "true or false")
    }
    let guidance: Double
    switch object["guidance"] {
    case .number(let g)? where g >= 0 && g.isFinite: guidance = g
    case nil: guidance = 1
    default: throw fail("guidance", "a non-negative number")
    }
    var prompts: [String]?
    if let value = object["prompts"] {
      guard case .array(let items) = value, !items.isEmpty, object["classes"] == nil else {
        throw fail("prompts", "a non-empty array of prompt strings (and no classes)")
      }
      prompts = try items.map {
        guard case .string(let prompt) = $0 else { throw fail("prompts", "a non-empty array of prompt strings") }
        return prompt
      }
    }
    return PairsIndex(
      sampleShape: sampleShape, count: count, teacher: try string("teacher"), sampler: try string("sampler"),
      steps: try integer("steps", 1...Int(Int32.max)), seed: UInt64(try integer("seed", 0...Int.max)),
      batchSize: object["batchSize"] == nil ? 0 : try integer("batchSize", 1...Int(Int32.max)),
      clipSample: clipSample, classes: object["classes"] == nil ? nil : try integer("classes", 1...(1 << 24)),
      prompts: prompts, guidance: guidance, shards: shards)
  }
}
