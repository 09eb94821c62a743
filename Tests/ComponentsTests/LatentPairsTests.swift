import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillNN
import DistillTestSupport
import Foundation
import Testing

@testable import DistillPipeline
@testable import KnowledgeDistillation
@testable import PairsData
@testable import Regression

/// (noise, latent, prompt) triples of the sd-tiny text-to-image teacher: `pipeline precompute`
/// with a captions source writes them, the pairs folder reads them back with their prompts, and
/// regression (Luhman & Luhman's knowledge distillation on fixed pairs) trains a one-step
/// student on them, by squared error or by LPIPS through the VAE's decoder (issue 17, item 4).
@Suite(.serialized) struct LatentPairsTests {
  static let prompts = ["a red disc", "a sneaker"]

  /// A one-step student of sd-tiny regressing the pairs at `pairs` on `captions`' prompts, all
  /// 4 pairs in every batch (so that the steps' distances compare).
  static func manifest(
    captions: String, pairs: String, output: String, steps: Int, distance: String = "l2",
    lpips: String? = nil,
    learningRate: Double = 0.0001
  ) -> JSONValue {
    let lpipsObject =
      lpips.map { #", "lpips": {"net": "vgg", "weights": \#(JSONValue.quoted($0))}"# } ?? ""
    let text = """
      {
        "name": "sd-tiny-regression", "seed": 3,
        "teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
        "data": {"type": "captions", "path": \(JSONValue.quoted(captions))},
        "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
        "losses": [{"type": "regression", "pairs": \(JSONValue.quoted(pairs)), "distance": "\(distance)"\(lpipsObject)}],
        "optimizer": {"type": "adam", "lr": \(learningRate)},
        "training": {"steps": \(steps), "batchSize": 4, "checkpointEvery": 100000, "logEvery": 1},
        "evaluation": {"every": \(steps), "samples": 2, "metrics": []},
        "output": \(JSONValue.quoted(output))
      }
      """
    return try! JSONValue.parse(Data(text.utf8), source: "sd-tiny-regression")
  }

  /// Writes the captions, the student's manifest, and 4 pairs precomputed from it (DDIM-4,
  /// guidance 3) by the `pipeline` executable; returns the paths.
  static func precomputed(in folder: String) throws -> (
    captions: String, manifest: String, pairs: String
  ) {
    let captions = try LatentTextToImageTests.writeCaptions(in: folder, prompts)
    let pairs = folder + "/pairs"
    let manifest = folder + "/student.json"
    let json = Self.manifest(captions: captions, pairs: pairs, output: folder + "/run", steps: 1)
    try (json.text() + "\n").write(toFile: manifest, atomically: true, encoding: .utf8)
    // The student's manifest names the folder it is about to be written into.
    let result = try runPipeline([
      "precompute", manifest, "--out", pairs, "--count", "4", "--steps", "4", "--guidance", "3",
      "--batch-size", "3",
      "--shard-size", "3",
    ])
    #expect(result.status == 0, "\(result.error)")
    #expect(
      result.output.contains("prompts: 2 (pair i of prompt i mod 2), guidance 3.0"),
      "\(result.output)")
    return (captions, manifest, pairs)
  }

  /// The stored latents are the guided DDIM-4 samples of the stored noise at each pair's
  /// prompt (DDIM written out here: leading spacing, ε prediction, final ᾱ = 1), the index and
  /// shards say which prompt, and the folder holds the prompts' embeddings.
  @Test func precomputeStoresNoiseLatentPromptTriples() throws {
    let folder = temporaryFolder()
    let (_, _, pairs) = try Self.precomputed(in: folder)
    let store = try PairsStore(folder: pairs)
    #expect(
      store.index.prompts == Self.prompts && store.index.guidance == 3 && store.index.classes == nil
    )
    #expect(store.index.shards.map(\.count) == [3, 1])
    let teacher = try TextToImageDenoiser(folder: sdTinyFixture)
    let embeddings = teacher.encode(prompts: Self.prompts).embeddings
    #expect(store.promptEmbeddings == embeddings)
    let batch = store.pairs([0, 1, 2, 3])
    #expect(batch.embeddings == embeddings.gatheringRows([0, 1, 0, 1]) && batch.labels == nil)
    let shard = try SafetensorsFile.read(contentsOf: pairs + "/shard-00001.safetensors")
    #expect(try shard.tensor("prompts").scalars == [1])

    let noise = try #require(batch.inputs)
    let latents = try #require(batch.samples)
    #expect(noise.shape == [4, 4, 8, 8])
    let alphaBar = teacher.schedule.alphasCumprod
    for pair in [1, 2] {
      var x = noise.sliced(axis: 0, pair..<(pair + 1))
      let context = Tensor.concat(
        [embeddings.sliced(axis: 0, (pair % 2)..<(pair % 2 + 1)), teacher.promptConditioning.null],
        axis: 0)
      for t in [750, 500, 250, 0] {
        let both = withoutGradients {
          teacher.unet(
            Tensor.concat([x, x], axis: 0), timesteps: [Float(t), Float(t)],
            encoderHiddenStates: context)
        }
        let (conditional, unconditional) = (
          both.sliced(axis: 0, 0..<1), both.sliced(axis: 0, 1..<2)
        )
        let epsilon = unconditional + (conditional - unconditional) * 3
        let (a, previous) = (alphaBar[t], t == 0 ? 1 : alphaBar[t - 250])
        let x0 = (x - epsilon * Float((1 - a).squareRoot())) / Float(a.squareRoot())
        x = x0 * Float(previous.squareRoot()) + epsilon * Float((1 - previous).squareRoot())
      }
      let stored = latents.sliced(axis: 0, pair..<(pair + 1))
      let difference = zip(stored.scalars, x.scalars).map { Swift.abs($0 - $1) }.max()!
      print(
        "sd-tiny precompute: pair \(pair)'s stored latent is off the guided DDIM-4 sample by \(difference)"
      )
      #expect(
        difference < 1e-4, "pair \(pair): stored latent off the guided DDIM sample by \(difference)"
      )
    }

    // A prompt index beyond the index's prompts, and a missing embeddings file, name the file.
    var tensors = try shard.tensors()
    tensors["prompts"] = Tensor([2])
    try SafetensorsFile.write(
      tensors, metadata: shard.metadata, to: pairs + "/shard-00001.safetensors")
    expectDistillError(containing: ["shard-00001.safetensors: prompts", "prompt indices in 0..<2", "2.0"]) {
      _ = try PairsStore(folder: pairs)
    }
    try FileManager.default.removeItem(atPath: pairs + "/" + PairsIndex.promptEmbeddingsFileName)
    expectDistillError(containing: [PairsIndex.promptEmbeddingsFileName, "missing"]) {
      _ = try PairsStore(folder: pairs)
    }
    // A run that stopped before its index left shards and the embeddings: written over, not refused.
    let index = store.index
    try SafetensorsFile.write(
      ["embeddings": embeddings], to: pairs + "/" + PairsIndex.promptEmbeddingsFileName)
    try FileManager.default.removeItem(atPath: pairs + "/" + PairsIndex.fileName)
    #expect(pairsFolderState(pairs, for: index) == .absentOrEmpty)
  }

  /// Regression on the triples: each row asks the student at its pair's prompt, the distance
  /// falls, and a `pairs` data source of the folder carries the prompts too.
  @Test func regressionTrainsOnTheTriplesWithTheirPrompts() throws {
    let folder = temporaryFolder()
    let (captions, _, pairs) = try Self.precomputed(in: folder)
    let json = Self.manifest(captions: captions, pairs: pairs, output: folder + "/run", steps: 5)
    try train(json, baseDirectory: folder)
    let records = try MetricsLog.read(path: RunFolder(path: folder + "/run").metricsPath)
    let distances = records.compactMap { $0.values["reg/distance"] }
    print("sd-tiny regression on precomputed triples: reg/distance \(distances)")
    #expect(distances.count == 5 && distances.allSatisfy(\.isFinite))
    #expect(distances.last! < 0.9 * distances.first!, "reg/distance \(distances)")

    // The pairs folder as the run's data: batches carry their prompts' embeddings.
    var object = json
    try ManifestOverride(
      parsing: "data={\"type\": \"pairs\", \"path\": \(JSONValue.quoted(pairs))}"
    ).apply(to: &object)
    let pipeline = try AssembledPipeline.assemble(
      Manifest.decode(
        object, source: "m", baseDirectory: folder, fallbackName: "m", registry: .standard()),
      registry: .standard())
    let source = try #require(pipeline.data as? PromptPairsSource)
    #expect(source.prompts == Self.prompts)
    var rng = RandomGenerator(seed: 0)
    let batch = try source.next(4, using: &rng)
    let store = try PairsStore(folder: pairs)
    let first = try #require(batch.inputs)
    let indices = (0..<4).map { row in
      (0..<4).first { store.pairs([$0]).inputs == first.sliced(axis: 0, row..<(row + 1)) }!
    }
    #expect(batch.embeddings == store.promptEmbeddings!.gatheringRows(indices.map { $0 % 2 }))
  }

  /// LPIPS regression of a latent student compares images: the student's latents and the
  /// pair's through the VAE's decoder. The first step's loss is that distance computed here,
  /// and training lowers it.
  @Test func lpipsRegressionComparesDecodedImages() throws {
    let folder = temporaryFolder()
    let (captions, _, pairs) = try Self.precomputed(in: folder)
    let weights = try lpipsTestWeights(
      fixture: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().path
        + "/DistillNNTests/Fixtures/lpips-vgg-randbackbone/weights.safetensors")
    let json = Self.manifest(
      captions: captions, pairs: pairs, output: folder + "/run", steps: 5, distance: "lpips",
      lpips: weights,
      learningRate: 0.00003)
    let untrained = try AssembledPipeline.assemble(
      Manifest.decode(
        json, source: "m", baseDirectory: folder, fallbackName: "m", registry: .standard()),
      registry: .standard())
    let term = try #require(untrained.losses.first?.term as? RegressionTerm)
    let teacher = try #require(untrained.teacher as? TextToImageDenoiser)
    #expect(term.decoder === teacher && teacher.imageShape == [3, 16, 16])

    try train(json, baseDirectory: folder)
    let records = try MetricsLog.read(path: RunFolder(path: folder + "/run").metricsPath)
    let losses = records.compactMap { $0.values["loss/total"] }
    print("sd-tiny LPIPS regression through the decoder: loss \(losses)")
    #expect(losses.count == 5 && losses.allSatisfy(\.isFinite))
    #expect(losses.last! < losses.first!, "loss \(losses)")

    // The first step's batch: the untrained term's cursor (the same seed) gives the first
    // pairs, asked of the untrained student.
    let batch = term.cursor.next(4)
    let lpips = try LPIPS.load(network: .vgg, weightsPath: weights)
    let expected = withoutGradients {
      let student = untrained.generator(
        batch.inputs!, condition: Condition(embeddings: batch.embeddings!))
      return lpips(teacher.decode(student), teacher.decode(batch.samples!)).mean()
    }
    #expect(
      Swift.abs(Double(expected.item) - losses[0]) < 1e-4 * max(1, losses[0]),
      "\(expected.item) vs \(losses[0])")
  }

  /// Knowledge distillation's fixed pairs (`pairs: N`) of a text-conditional student: pair `i`
  /// of the captions' prompt `i mod P`, its target the guided teacher's DDIM output at that
  /// prompt (not the empty prompt's), and the distance falls on them.
  @Test func knowledgeDistillationFixedPairsCarryTheirPrompts() throws {
    let folder = temporaryFolder()
    let captions = try LatentTextToImageTests.writeCaptions(in: folder, Self.prompts)
    let text = """
      {
        "name": "sd-tiny-kd-pairs", "seed": 2,
        "teacher": {"type": "folder", "path": \(JSONValue.quoted(sdTinyFixture))},
        "data": {"type": "captions", "path": \(JSONValue.quoted(captions))},
        "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
        "losses": [{"type": "knowledge-distillation", "guidance": 3, "steps": 4, "pairs": 4}],
        "optimizer": {"type": "adam", "lr": 0.0001},
        "training": {"steps": 4, "batchSize": 4, "checkpointEvery": 100000, "logEvery": 1},
        "evaluation": {"every": 4, "samples": 2, "metrics": []},
        "output": \(JSONValue.quoted(folder + "/run"))
      }
      """
    let json = try JSONValue.parse(Data(text.utf8), source: "kd")
    let pipeline = try AssembledPipeline.assemble(
      Manifest.decode(
        json, source: "m", baseDirectory: folder, fallbackName: "m", registry: .standard()),
      registry: .standard())
    let term = try #require(pipeline.losses[0].term as? KnowledgeDistillationTerm)
    let pairs = try #require(term.pairs)
    let teacher = try #require(pipeline.teacher as? TextToImageDenoiser)
    let embeddings = teacher.encode(prompts: Self.prompts).embeddings
    #expect(pairs.condition.embeddings == embeddings.gatheringRows([0, 1, 0, 1]))
    let row = pairs.noise.sliced(axis: 0, 1..<2)
    let sampler = DDIMSampler(
      schedule: teacher.schedule, prediction: .epsilon, clipSample: false, spacing: .trailing)
    let prompted = KnowledgeDistillationTerm.teacherOutput(
      teacher.guided(3), sampler: sampler, steps: 4, noise: row,
      condition: Condition(embeddings: embeddings.sliced(axis: 0, 1..<2)))
    let empty = KnowledgeDistillationTerm.teacherOutput(
      teacher, sampler: sampler, steps: 4, noise: row)
    let target = pairs.target.sliced(axis: 0, 1..<2)
    #expect(zip(target.scalars, prompted.scalars).map { Swift.abs($0 - $1) }.max()! < 1e-5)
    #expect(zip(target.scalars, empty.scalars).map { Swift.abs($0 - $1) }.max()! > 1e-3)

    try train(json, baseDirectory: folder)
    let records = try MetricsLog.read(path: RunFolder(path: folder + "/run").metricsPath)
    let distances = records.compactMap { $0.values["kd/distance"] }
    print("sd-tiny knowledge distillation on 4 fixed pairs with prompts: kd/distance \(distances)")
    #expect(distances.count == 4 && distances.allSatisfy(\.isFinite))
    #expect(distances.last! < 0.9 * distances.first!, "kd/distance \(distances)")
  }
}
