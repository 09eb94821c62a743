import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillPipeline
import Foundation
import Testing

/// A fresh temporary folder for one test.
private func scratchFolder(_ name: String = #function) -> String {
  let path = NSTemporaryDirectory() + "distillery-pairs-\(name.filter(\.isLetter))-\(UUID().uuidString.prefix(8))"
  try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// A two-mode Gaussian-mixture teacher built through the manifest, as `pipeline precompute` does.
private func mixtureTeacher(dimension: Int = 2) throws -> any Denoiser {
  let means = dimension == 2 ? "[[-2, 0], [2, 0]]" : "[[-2, 0, 0], [2, 0, 0]]"
  let text = """
    {"teacher": {"type": "gaussian-mixture", "means": \(means), "std": 0.3},
     "generator": {"type": "mlp"}, "losses": [{"type": "denoising"}]}
    """
  let manifest = try Manifest.decode(
    JSONValue.parse(Data(text.utf8), source: "teacher"), source: "teacher", baseDirectory: "/", fallbackName: "t",
    registry: .standard())
  return try AssembledPipeline.buildTeacher(manifest, registry: .standard(), for: "precomputing pairs")
}

private func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

@Suite struct PairsShardTests {
  @Test func sameSeedGivesIdenticalPairsWhateverTheShardSize() throws {
    let teacher = try mixtureTeacher()
    let small = scratchFolder() + "/small"
    let large = scratchFolder() + "/large"
    let again = scratchFolder() + "/again"
    let options = PairsOptions(count: 37, sampler: .ddim, steps: 20, seed: 5, shardSize: 5, batchSize: 8)
    var larger = options
    larger.shardSize = 16
    let indexSmall = try writePairs(teacher: teacher, options: options, folder: small)
    let indexLarge = try writePairs(teacher: teacher, options: larger, folder: large)
    try writePairs(teacher: teacher, options: options, folder: again)
    #expect(indexSmall.shards.map(\.count) == [5, 5, 5, 5, 5, 5, 5, 2])
    #expect(indexLarge.shards.map(\.count) == [16, 16, 5])

    let a = try PairsStore(folder: small).pairs(Array(0..<37))
    let b = try PairsStore(folder: large).pairs(Array(0..<37))
    #expect(bits(a.inputs!) == bits(b.inputs!))
    #expect(bits(a.samples!) == bits(b.samples!))
    // The same options write byte-identical files.
    for file in indexSmall.shards.map(\.file) + [PairsIndex.fileName] {
      let first = FileManager.default.contents(atPath: small + "/" + file)
      #expect(first != nil && first == FileManager.default.contents(atPath: again + "/" + file), "\(file)")
    }
    // Pair i's noise is the documented draw: RandomGenerator(seed).fork(i).
    var stream = RandomGenerator(seed: 5).fork(30)
    #expect(bits(a.inputs!.sliced(axis: 0, 30..<31)) == bits(Tensor.normal([1, 2], using: &stream)))
    // DDIM moved the noise onto the mixture: every sample sits near a mode (±2, 0).
    let s = a.samples!.scalars
    for i in 0..<37 {
      let distance = min(hypot(s[2 * i] - 2, s[2 * i + 1]), hypot(s[2 * i] + 2, s[2 * i + 1]))
      #expect(distance < 1.5, "pair \(i) at (\(s[2 * i]), \(s[2 * i + 1]))")
    }
  }

  @Test func folderHoldingOtherPairsIsRefusedUnlessReplacing() throws {
    let teacher = try mixtureTeacher()
    let folder = scratchFolder()
    try writePairs(teacher: teacher, options: PairsOptions(count: 8, steps: 5, seed: 1, shardSize: 3), folder: folder)
    // The same pairs split differently are rewritten; stale shards go.
    try writePairs(teacher: teacher, options: PairsOptions(count: 8, steps: 5, seed: 1, shardSize: 8), folder: folder)
    #expect(!FileManager.default.fileExists(atPath: folder + "/shard-00002.safetensors"))
    let other = PairsOptions(count: 8, steps: 5, seed: 2)
    #expect(throws: PairsFolderError.self) { try writePairs(teacher: teacher, options: other, folder: folder) }
    #expect(try PairsIndex.read(folder: folder).seed == 1)
    try writePairs(teacher: teacher, options: other, folder: folder, replace: true)
    #expect(try PairsIndex.read(folder: folder).seed == 2)
    let foreign = scratchFolder()
    FileManager.default.createFile(atPath: foreign + "/notes.txt", contents: Data("mine".utf8))
    #expect(throws: PairsFolderError.self) { try writePairs(teacher: teacher, options: other, folder: foreign, replace: true) }
  }

  @Test func badShardIsNamedWhenOpening() throws {
    let teacher = try mixtureTeacher()
    let folder = scratchFolder()
    try writePairs(teacher: teacher, options: PairsOptions(count: 6, steps: 5, shardSize: 3), folder: folder)
    let bad = folder + "/shard-00001.safetensors"
    try SafetensorsFile.write(["noise": Tensor.zeros([3, 3]), "samples": Tensor.zeros([3, 3])], to: bad)
    do {
      _ = try PairsStore(folder: folder)
      Issue.record("a shard of the wrong shape was accepted")
    } catch let error as DistillError {
      #expect(error.description.contains("shard-00001.safetensors"))
      #expect(error.description.contains("[3, 2]"))
    }
    do {
      _ = try PairsStore(folder: scratchFolder() + "/absent")
      Issue.record("a missing folder was accepted")
    } catch let error as DistillError {
      #expect(error.description.contains("no such pairs folder"))
    }
  }
}

@Suite struct PairsCursorTests {
  @Test func cursorResumesExactlyAcrossEpochs() throws {
    let folder = scratchFolder()
    try writePairs(
      teacher: try mixtureTeacher(), options: PairsOptions(count: 10, steps: 5, shardSize: 4), folder: folder)
    let store = try PairsStore(folder: folder)
    let seed = RandomGenerator(seed: 3)
    let first = PairsCursor(store: store, shuffle: true, seed: seed)
    // One epoch visits every pair once; the next epoch is another permutation.
    let epoch0 = first.nextIndices(10)
    let epoch1 = first.nextIndices(10)
    #expect(epoch0.sorted() == Array(0..<10) && epoch1.sorted() == Array(0..<10))
    #expect(epoch0 != epoch1)
    _ = first.nextIndices(7)
    let saved = first.checkpointState()
    let expected = (0..<4).map { _ in first.next(4) }

    let resumed = PairsCursor(store: store, shuffle: true, seed: seed)
    try resumed.restore(saved)
    #expect(resumed.epoch == 2 && resumed.cursor == 7)
    for batch in expected {
      let got = resumed.next(4)
      #expect(bits(got.inputs!) == bits(batch.inputs!))
      #expect(bits(got.samples!) == bits(batch.samples!))
    }
    // A checkpoint of another folder's cursor is refused.
    var wrong = saved
    wrong["count"] = Tensor([11])
    #expect(throws: DistillError.self) { try resumed.restore(wrong) }
    // Without shuffling the order is the folder's.
    #expect(PairsCursor(store: store, shuffle: false, seed: seed).nextIndices(12) == Array(0..<10) + [0, 1])
  }

  @Test func ranksReadTheirRowsOfTheSameGlobalBatch() throws {
    let folder = scratchFolder()
    try writePairs(
      teacher: try mixtureTeacher(), options: PairsOptions(count: 10, steps: 5, shardSize: 4), folder: folder)
    let store = try PairsStore(folder: folder)
    let seed = RandomGenerator(seed: 5)
    let whole = PairsCursor(store: store, shuffle: true, seed: seed)
    let ranks = (0..<2).map { _ in PairsCursor(store: store, shuffle: true, seed: seed) }
    // Global batches of 6 (3 rows a rank) across an epoch boundary.
    for _ in 0..<4 {
      let expected = whole.next(6)
      let parts = ranks.enumerated().map { rank, cursor in cursor.next(rows: rank * 3..<(rank + 1) * 3, of: 6) }
      #expect(bits(Tensor.concat(parts.map { $0.inputs! }, axis: 0)) == bits(expected.inputs!))
      #expect(bits(Tensor.concat(parts.map { $0.samples! }, axis: 0)) == bits(expected.samples!))
      // Every rank's cursor stays where the whole batch's is, so rank 0's checkpoint fits all.
      for cursor in ranks { #expect(cursor.checkpointState() == whole.checkpointState()) }
    }
  }
}
