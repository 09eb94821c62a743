import DistillCore
import Foundation

/// A pairs folder opened for reading: the index and every shard mapped, shapes checked.
///
/// Rows are copied out of the mapped shards on demand, so a folder larger than memory can be
/// trained on.
public final class PairsStore {
  public let folder: String
  public let index: PairsIndex
  private let shards: [SafetensorsFile]
  /// The first pair of each shard, and `count` at the end.
  private let starts: [Int]
  private let valuesPerSample: Int
  /// The prompts' embeddings `[prompts, L, D]` of text-to-image pairs.
  public let promptEmbeddings: Tensor?

  /// Opens the pairs folder at `folder`.
  ///
  /// - Parameter expectedShape: the sample shape the pairs must have (the teacher's or the
  ///   generator's); `location` names that shape's owner in the error.
  /// - Throws: ``DistillError`` naming the file: a missing or malformed index, a missing shard,
  ///   a tensor other than float32 `[n] + sampleShape` (`[n]` labels in `0..<classes` for
  ///   class-conditional pairs, `[n]` prompt indices for text-to-image pairs), a prompt
  ///   embeddings file other than float32 `[prompts, L, D]`, or a sample shape other than
  ///   `expectedShape`.
  public init(folder: String, expectedShape: [Int]? = nil, location: String = "") throws {
    self.folder = folder
    let index = try PairsIndex.read(folder: folder)
    self.index = index
    let indexPath = (folder as NSString).appendingPathComponent(PairsIndex.fileName)
    guard index.count < 1 << 24 else {
      throw DistillError.invalidValue(
        location: "\(indexPath): count", expected: "fewer than 16777216 pairs (checkpoint counters are float32)",
        found: String(index.count))
    }
    if let expectedShape, expectedShape != index.sampleShape {
      throw DistillError.invalidValue(
        location: "\(indexPath): sampleShape",
        expected: "\(expectedShape) (the sample shape of \(location.isEmpty ? "this pipeline" : location))",
        found: "\(index.sampleShape)")
    }
    promptEmbeddings = try index.prompts.map { try Self.readPromptEmbeddings(folder: folder, count: $0.count) }
    var shards: [SafetensorsFile] = []
    var starts = [0]
    for (number, shard) in index.shards.enumerated() {
      let path = (folder as NSString).appendingPathComponent(shard.file)
      guard FileManager.default.fileExists(atPath: path) else {
        throw DistillError.io(path: path, reason: "missing shard listed in \(indexPath)")
      }
      let file = try SafetensorsFile.read(contentsOf: path)
      // The writer numbers its shards; a shard copied over another's name (same shapes, other
      // pairs) would otherwise train on the wrong pairs without a word.
      if let written = file.metadata["shard"], written != String(number) {
        throw DistillError.invalidValue(
          location: path, expected: "shard \(number) of \(indexPath) (its position in \"shards\")",
          found: "the file of shard \(written)")
      }
      for key in ["noise", "samples"] {
        guard let info = file.entries[key] else {
          throw DistillError.invalidValue(
            location: path, expected: "a tensor named \"\(key)\"", found: "keys \(file.entries.keys.sorted())")
        }
        guard info.dtype == .F32 else {
          throw DistillError.invalidValue(location: "\(path): \(key)", expected: "dtype F32", found: info.dtype.rawValue)
        }
        guard info.shape == [shard.count] + index.sampleShape else {
          throw DistillError.invalidValue(
            location: "\(path): \(key)", expected: "shape \([shard.count] + index.sampleShape) (count + sampleShape of \(indexPath))",
            found: "\(info.shape)")
        }
      }
      if let classes = index.classes {
        try Self.checkIndices(file, "labels", path: path, count: shard.count, below: classes, "\(indexPath) says classes: \(classes)")
      }
      if let prompts = index.prompts {
        try Self.checkIndices(
          file, "prompts", path: path, count: shard.count, below: prompts.count, "\(indexPath) lists \(prompts.count) prompts")
      }
      shards.append(file)
      starts.append(starts.last! + shard.count)
    }
    self.shards = shards
    self.starts = starts
    self.valuesPerSample = index.sampleShape.reduce(1, *)
  }

  /// Checks that `file` holds `key`, float32 `[count]` indices in `0..<limit` (`said`: what the
  /// index says of them, for the error).
  private static func checkIndices(
    _ file: SafetensorsFile, _ key: String, path: String, count: Int, below limit: Int, _ said: String
  ) throws {
    guard let info = file.entries[key], info.dtype == .F32, info.shape == [count] else {
      throw DistillError.invalidValue(
        location: path, expected: "a float32 tensor \"\(key)\" of shape [\(count)] (\(said))",
        found: file.entries[key].map { "\($0.dtype.rawValue) \($0.shape)" } ?? "none")
    }
    let values = try file.tensor(key).scalars
    if let bad = values.first(where: { !($0 >= 0 && $0 < Float(limit) && $0 == $0.rounded()) }) {
      let what = key == "labels" ? "class indices" : "prompt indices"
      throw DistillError.invalidValue(location: "\(path): \(key)", expected: "\(what) in 0..<\(limit)", found: "\(bad)")
    }
  }

  /// The prompt embeddings file of a folder of text-to-image pairs with `count` prompts.
  static func readPromptEmbeddings(folder: String, count: Int) throws -> Tensor {
    let path = (folder as NSString).appendingPathComponent(PairsIndex.promptEmbeddingsFileName)
    guard FileManager.default.fileExists(atPath: path) else {
      throw DistillError.io(path: path, reason: "missing: \(PairsIndex.fileName) lists prompts, whose embeddings this file holds")
    }
    let file = try SafetensorsFile.read(contentsOf: path)
    guard let info = file.entries["embeddings"], info.dtype == .F32, info.shape.count == 3, info.shape[0] == count else {
      throw DistillError.invalidValue(
        location: "\(path): embeddings", expected: "a float32 tensor [\(count), L, D] (one embedding per prompt of \(PairsIndex.fileName))",
        found: file.entries["embeddings"].map { "\($0.dtype.rawValue) \($0.shape)" } ?? "none")
    }
    return try file.tensor("embeddings")
  }

  public var count: Int { index.count }
  public var sampleShape: [Int] { index.sampleShape }

  /// The pairs at `indices`: the teacher's samples, their noise as `inputs`, each
  /// `[indices.count] + sampleShape`, and their classes for class-conditional pairs, their
  /// prompts' embeddings for text-to-image pairs.
  public func pairs(_ indices: [Int]) -> Batch {
    func rows(_ key: String) -> [Int] {
      gather(key, indices, width: 1, shape: [indices.count]).scalars.map { Int($0) }
    }
    return Batch(
      samples: gather("samples", indices),
      labels: index.classes == nil ? nil : rows("labels"),
      inputs: gather("noise", indices),
      embeddings: promptEmbeddings.map { $0.gatheringRows(rows("prompts")) })
  }


  private func gather(_ key: String, _ indices: [Int], width: Int? = nil, shape: [Int]? = nil) -> Tensor {
    let width = width ?? valuesPerSample
    return Tensor(shape: shape ?? [indices.count] + sampleShape) { out in
      for (row, index) in indices.enumerated() {
        precondition(index >= 0 && index < count, "pair \(index) out of 0..<\(count)")
        let shard = shardNumber(of: index)
        let local = index - starts[shard]
        // Shapes and dtype were checked when opening, so the read cannot fail.
        try! shards[shard].withUnsafeBytes(of: key) { raw in
          let source = raw.baseAddress! + local * width * 4
          let target = UnsafeMutableRawPointer(out.baseAddress! + row * width)
          target.copyMemory(from: source, byteCount: width * 4)
        }
      }
    }
  }

  private func shardNumber(of index: Int) -> Int {
    var low = 0
    var high = shards.count - 1
    while low < high {
      let mid = (low + high + 1) / 2
      if starts[mid] <= index { low = mid } else { high = mid - 1 }
    }
    return low
  }
}

/// A position in a pairs folder: the epoch and the cursor within that epoch's order.
///
/// Each epoch visits every pair once, in a permutation drawn from `seed` and the epoch alone
/// (the identity when not shuffling), so the cursor and epoch are all a checkpoint needs for a
/// resumed run to continue the same order.
public final class PairsCursor: Checkpointable {
  public let store: PairsStore
  public let shuffle: Bool
  let seed: RandomGenerator
  public private(set) var epoch = 0
  public private(set) var cursor = 0
  private var order: [Int]

  /// - Parameter seed: the stream the permutations come from (fork `epoch` of it).
  public init(store: PairsStore, shuffle: Bool, seed: RandomGenerator) {
    self.store = store
    self.shuffle = shuffle
    self.seed = seed
    order = []
    order = permutation(epoch: 0)
  }

  private func permutation(epoch: Int) -> [Int] {
    var order = Array(0..<store.count)
    guard shuffle else { return order }
    var rng = seed.fork(UInt64(epoch))
    // Fisher-Yates with one uniform draw per position.
    let draws = rng.uniform(count: max(order.count - 1, 0))
    for i in stride(from: order.count - 1, to: 0, by: -1) {
      let j = min(Int(draws[order.count - 1 - i] * Float(i + 1)), i)
      order.swapAt(i, j)
    }
    return order
  }

  /// The indices of the next `size` pairs, moving into the next epoch as needed.
  public func nextIndices(_ size: Int) -> [Int] {
    var indices: [Int] = []
    indices.reserveCapacity(size)
    while indices.count < size {
      if cursor == order.count {
        epoch += 1
        cursor = 0
        order = permutation(epoch: epoch)
      }
      let take = min(size - indices.count, order.count - cursor)
      indices += order[cursor..<(cursor + take)]
      cursor += take
    }
    return indices
  }

  /// The next `size` pairs.
  public func next(_ size: Int) -> Batch { store.pairs(nextIndices(size)) }

  /// Rows `rows` of the next `globalCount` pairs: every data-parallel rank advances its cursor
  /// by the whole global batch and reads its own rows, so the cursors stay equal everywhere.
  public func next(rows: Range<Int>, of globalCount: Int) -> Batch {
    precondition(rows.lowerBound >= 0 && rows.upperBound <= globalCount, "rows \(rows) outside a batch of \(globalCount)")
    return store.pairs(Array(nextIndices(globalCount)[rows]))
  }

  public func checkpointState() -> [String: Tensor] {
    // Counters as Float are exact below 2^24; the store refuses larger folders.
    ["epoch": Tensor([Float(epoch)]), "cursor": Tensor([Float(cursor)]), "count": Tensor([Float(store.count)])]
  }

  public func restore(_ state: [String: Tensor]) throws {
    func value(_ key: String) throws -> Int {
      guard let t = state[key], t.count == 1, let v = t.scalars.first, v >= 0, v == v.rounded() else {
        throw DistillError.stateDictMismatch(problems: ["pairs cursor: missing or bad \"\(key)\""])
      }
      return Int(v)
    }
    let count = try value("count")
    guard count == store.count else {
      throw DistillError.stateDictMismatch(
        problems: ["pairs cursor: the checkpoint read \(count) pairs, \(store.folder) holds \(store.count)"])
    }
    let cursor = try value("cursor")
    guard cursor <= count else {
      throw DistillError.stateDictMismatch(problems: ["pairs cursor: cursor \(cursor) beyond \(count) pairs"])
    }
    epoch = try value("epoch")
    order = permutation(epoch: epoch)
    self.cursor = cursor
  }
}
