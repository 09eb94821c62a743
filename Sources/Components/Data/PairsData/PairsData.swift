import DistillCore
import DistillDiffusion
import DistillPipeline

/// Precomputed noise-sample pairs as training data: each batch holds the teacher's samples
/// (`samples`), the noise they came from (`inputs`) and, for class-conditional pairs, their
/// classes (for text-to-image pairs their prompts' embeddings: ``PromptPairsSource``), in a
/// per-epoch permutation.
public class PairsSource: DataSource {
  public let cursor: PairsCursor
  public var sampleShape: [Int] { cursor.store.sampleShape }

  init(cursor: PairsCursor) { self.cursor = cursor }

  /// The next `size` pairs. The order comes from the manifest seed and the epoch, not from
  /// `rng`, so the cursor and epoch in a checkpoint are enough to continue it.
  public func next(_ size: Int, using rng: inout RandomGenerator) throws -> Batch {
    cursor.next(size)
  }

  public var labelNames: [String]? { cursor.store.index.classes.map { (0..<$0).map(String.init) } }

  public func next(rows: Range<Int>, of globalCount: Int, streams: inout [RandomGenerator]) throws -> Batch {
    cursor.next(rows: rows, of: globalCount)
  }
}

/// Text-to-image pairs: each row carries its prompt's embedding, and the prompts are those a
/// text-conditional student is evaluated on.
public final class PromptPairsSource: PairsSource, PromptDataSource {
  public var prompts: [String] { cursor.store.index.prompts! }
  public var promptEmbeddings: Tensor { cursor.store.promptEmbeddings! }
}

public enum PairsData: DataComponent {
  public static let id = "pairs"
  public static let summary = "noise-sample pairs written by `pipeline precompute` (docs/precompute.md): samples and their noise (and classes or prompts)"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("path", .path(mustExist: true), "the pairs folder (holding pairs.json), relative to the manifest"),
    ParameterSpec("shuffle", .bool, default: .bool(true), "visit the pairs in a new permutation each epoch"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource {
    let expected = context.teacher?.sampleShape
    let store = try PairsStore(
      folder: entry.path("path"), expectedShape: expected, location: "the teacher (\(context.manifest.teacher?.type ?? ""))")
    let cursor = PairsCursor(
      store: store, shuffle: entry.bool("shuffle"), seed: context.initialisationRNG(for: entry.path))
    context.addCheckpointState(prefix: entry.path, cursor)
    return store.index.prompts == nil ? PairsSource(cursor: cursor) : PromptPairsSource(cursor: cursor)
  }
}
