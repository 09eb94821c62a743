import BuiltInComponents
import DistillCore
import DistributionMatching
@testable import DistillPipeline
import DistillTestSupport
import Foundation
import ImageIO
import Testing

/// The path from a manifest to the objects the trainer steps: the typed registry, the one
/// build order and its stages, structural loss keys and choices.
struct AssemblyTests {
  static var registry: ComponentRegistry { .standard() }

  @Test func everyRegisteredComponentIsFiledInTheTableOfItsKind() {
    for kind in ComponentKind.allCases {
      let ids = Set(Self.registry.ids(of: kind))
      let filed: Set<String>
      switch kind {
      case .teacher: filed = Set(Self.registry.teachers.keys)
      case .schedule: filed = Set(Self.registry.schedules.keys)
      case .generator: filed = Set(Self.registry.generators.keys)
      case .score: filed = Set(Self.registry.scores.keys)
      case .loss: filed = Set(Self.registry.losses.keys)
      case .data: filed = Set(Self.registry.data.keys)
      case .metric: filed = Set(Self.registry.metrics.keys)
      case .optimizer: filed = Set(Self.registry.optimizers.keys)
      }
      #expect(!ids.isEmpty, "no \(kind) registered")
      #expect(filed == ids, "\(kind): filed \(filed.sorted()), listed \(ids.sorted())")
    }
  }

  @Test func everyLossHasTheStructuralWeightWithItsOwnDefault() throws {
    for type in Self.registry.components(of: .loss) {
      let weight = try #require(type.allParameters.first { $0.name == "weight" }, "\(type.id) has no weight")
      #expect(!type.parameters.contains { $0.name == "weight" }, "\(type.id) declares weight itself")
      let expected = type.id == "dmd2-gan" ? 3e-3 : 1
      #expect(weight.defaultValue == .number(expected), "\(type.id): default \(String(describing: weight.defaultValue))")
    }
    // Other kinds have no weight.
    for kind in ComponentKind.allCases where kind != .loss {
      for type in Self.registry.components(of: kind) {
        #expect(type.structuralParameters.isEmpty, "\(kind) \(type.id)")
      }
    }
  }

  @Test func theAssembledLossesCarryTheirWeightsAndNames() throws {
    var json = toyManifestJSON(output: temporaryFolder())
    try ManifestOverride(parsing: #"losses=[{"type": "distribution-matching", "weight": 0.25}, {"type": "real-score-ascent"}, {"type": "distribution-matching"}]"#).apply(to: &json)
    let manifest = try Manifest.decode(
      json, source: "m.json", baseDirectory: NSTemporaryDirectory(), fallbackName: "m", registry: Self.registry)
    let pipeline = try AssembledPipeline.assemble(manifest, registry: Self.registry)
    #expect(pipeline.losses.map(\.weight) == [0.25, 1, 1])
    #expect(pipeline.losses.map(\.name) == ["distribution-matching-0", "real-score-ascent", "distribution-matching-2"])
    #expect(pipeline.losses.map(\.path) == ["losses[0]", "losses[1]", "losses[2]"])
  }

  @Test func aWeightOutOfRangeIsRefusedAtItsPath() throws {
    var json = toyManifestJSON(output: temporaryFolder())
    try ManifestOverride(parsing: "losses[0].weight=-1").apply(to: &json)
    let error = try #require(throws: ManifestError.self) {
      try Manifest.decode(json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: Self.registry)
    }
    #expect(error.problems.map(\.path) == ["losses[0].weight"])
    #expect(error.problems[0].message.contains("a number in [0, 1000000]"))
  }

  @Test func aChoiceReadsBackAsItsEnumAndAnotherStringIsRefusedWithTheCases() throws {
    var json = toyManifestJSON(output: temporaryFolder())
    try ManifestOverride(parsing: #"losses[0].normalisation="paper""#).apply(to: &json)
    let manifest = try Manifest.decode(
      json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: Self.registry)
    #expect(manifest.losses[0].choice("normalisation") as DistributionMatchingNormalisation == .paper)
    try ManifestOverride(parsing: #"losses[0].normalisation="papr""#).apply(to: &json)
    let error = try #require(throws: ManifestError.self) {
      try Manifest.decode(json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: Self.registry)
    }
    #expect(error.problems.map(\.path) == ["losses[0].normalisation"])
    #expect(error.problems[0].message.contains(#"one of "reference", "paper", "none""#))
    #expect(error.problems[0].message.contains(#"did you mean "paper"?"#))
  }

  @Test func theSchemaAndTheListingNameEveryCaseOfAChoice() {
    let listing = ComponentListing.text(Self.registry, kinds: [.loss])
    #expect(listing.contains(#"normalisation (one of "reference", "paper", "none"; default "reference")"#))
    let schema = ManifestSchema.valueSchema(.choice(.init(DistributionMatchingNormalisation.self)))
    #expect(schema == .object(["enum": .array(["reference", "paper", "none"])]))
  }

  /// A manifest whose teacher folder is empty and whose data is synthetic.
  static func manifestWithMissingTeacher() throws -> Manifest {
    let folder = temporaryFolder()
    let json = try JSONValue.parse(
      Data(
        """
        {"teacher": {"type": "folder", "path": \(JSONValue.quoted(folder))},
         "generator": {"type": "mlp"}, "losses": [{"type": "denoising"}],
         "data": {"type": "shapes", "size": 8, "classes": 2}}
        """.utf8), source: "m.json")
    return try Manifest.decode(json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
  }

  @Test func theDataStageBuildsTheDataWithoutTheTeacher() throws {
    let json = try JSONValue.parse(
      Data(
        #"""
        {"teacher": {"type": "gaussian-mixture", "means": [[0, 0]], "std": 1},
         "generator": {"type": "mlp"}, "losses": [{"type": "denoising"}],
         "data": {"type": "gaussian-mixture", "means": [[1, 2]], "std": 0.5}}
        """#.utf8), source: "m.json")
    let manifest = try Manifest.decode(json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: Self.registry)
    let data = try BuildContext.assemble(manifest, registry: Self.registry, through: .data)
    #expect(data.teacher == nil && data.data != nil && data.generator == nil && data.losses.isEmpty)
    let teacher = try BuildContext.assemble(manifest, registry: Self.registry, through: .teacher)
    #expect(teacher.teacher != nil && teacher.data == nil && teacher.generator == nil)
  }

  @Test func aDataEntryAloneOrAManifestsDataBuildsWithoutTheRest() throws {
    let entry = try JSONValue.parse(Data(#"{"type": "shapes", "size": 8, "classes": 3}"#.utf8), source: "d.json")
    let (built, data) = try AssembledPipeline.buildData(entry, source: "d.json", baseDirectory: "/tmp", registry: Self.registry)
    #expect(built.path == "data" && data.sampleShape == [3, 8, 8] && data.labelNames?.count == 3)
    // The rest of a manifest is not read: a generator that does not validate is no obstacle.
    let manifest = try JSONValue.parse(
      Data(#"{"generator": {"type": "nonexistent"}, "data": {"type": "shapes", "size": 8, "classes": 2}}"#.utf8),
      source: "m.json")
    #expect(try AssembledPipeline.buildData(manifest, source: "m.json", baseDirectory: "/tmp", registry: Self.registry).data.sampleShape == [3, 8, 8])
    let bad = try JSONValue.parse(Data(#"{"type": "shapes", "size": 0}"#.utf8), source: "d.json")
    let error = try #require(throws: ManifestError.self) {
      try AssembledPipeline.buildData(bad, source: "d.json", baseDirectory: "/tmp", registry: Self.registry)
    }
    #expect(error.problems.map(\.path) == ["data.size"])
    let none = try JSONValue.parse(Data(#"{"generator": {"type": "mlp"}}"#.utf8), source: "m.json")
    let missing = try #require(throws: ManifestError.self) {
      try AssembledPipeline.buildData(none, source: "m.json", baseDirectory: "/tmp", registry: Self.registry)
    }
    #expect(missing.problems == [ManifestProblem("data", "the manifest has no data entry")])
  }

  @Test func aTeacherBuildFailureNamesTheTeacherEntryAtEveryStage() throws {
    let manifest = try Self.manifestWithMissingTeacher()
    for stage in [AssemblyStage.teacher, .all] {
      let error = try #require(throws: ManifestError.self) {
        try BuildContext.assemble(manifest, registry: Self.registry, through: stage)
      }
      #expect(error.problems.count == 1 && error.problems[0].path.hasPrefix("teacher"), "\(stage): \(error)")
    }
    #expect(try BuildContext.assemble(manifest, registry: Self.registry, through: .data).data != nil)
  }

  @Test func dataOfAnotherShapeThanTheTeachersIsRefusedBeforeTraining() throws {
    let json = try JSONValue.parse(
      Data(
        #"""
        {"teacher": {"type": "gaussian-mixture", "means": [[0, 0]], "std": 1},
         "generator": {"type": "mlp"}, "losses": [{"type": "distribution-matching"}],
         "scores": {"real": {"type": "teacher"}, "fake": {"type": "teacher"}},
         "data": {"type": "gaussian-mixture", "means": [[1, 2, 3]], "std": 0.5}}
        """#.utf8), source: "m.json")
    let manifest = try Manifest.decode(json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: Self.registry)
    for stage in [AssemblyStage.all, .data] {
      if stage == .data {
        let built = try BuildContext.assemble(manifest, registry: Self.registry, through: stage)
        #expect(built.data?.sampleShape == [3], "the data stage builds no teacher to compare with")
        continue
      }
      let refusal = try #require(throws: ManifestError.self) {
        try BuildContext.assemble(manifest, registry: Self.registry, through: stage)
      }
      #expect(refusal.problems.map(\.path) == ["data"])
      #expect(refusal.problems[0].message.contains("expected samples of the teacher's shape [2]") && refusal.problems[0].message.contains("found [3]"))
    }
  }

  @Test func aTrainedNetworkKeepsItsOptimizerEntry() throws {
    let manifest = try Manifest.decode(
      toyManifestJSON(output: temporaryFolder()), source: "m.json", baseDirectory: "/tmp", fallbackName: "m",
      registry: Self.registry)
    let pipeline = try AssembledPipeline.assemble(manifest, registry: Self.registry)
    #expect(pipeline.generatorNetwork.optimizerEntry?.path == "optimizer")
    let fake = try #require(pipeline.scores["fake"]?.network)
    #expect(fake.optimizerEntry?.path == "scores.fake.optimizer")
    #expect(fake.baseLearningRate == 0.001)
  }
}

/// A sink that keeps what it is sent.
final class RecordingSink: MetricSink {
  var images: [(step: Int, tag: String, shape: [Int])] = []
  var values: [Int: [String: Double]] = [:]
  func record(step: Int, values: [String: Double]) throws { self.values[step, default: [:]].merge(values) { _, b in b } }
  func image(step: Int, tag: String, _ image: Tensor) throws { images.append((step, tag, image.shape)) }
  func finish() throws {}
}

struct RecorderTests {
  @Test func everySinkReceivesTheGridOfAnEvaluation() throws {
    let registry = ComponentRegistry.standard()
    let output = temporaryFolder()
    let manifest = try Manifest.decode(
      toyManifestJSON(output: output), source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
    let pipeline = try AssembledPipeline.assemble(manifest, registry: registry)
    let folder = RunFolder(path: output)
    _ = try folder.prepare(for: manifest.resolvedJSON, mode: .fresh)
    let trainer = Trainer(pipeline: pipeline, folder: folder, progress: ProgressReporter(style: .silent))
    let sink = RecordingSink()
    trainer.recorder.sinks = [sink]
    try trainer.recorder.evaluate(at: 3)
    #expect(sink.images.count == 1)
    #expect(sink.images.first?.step == 3 && sink.images.first?.tag == "samples")
    // The scatter plot of 2-D points, as written to samples/.
    let written = try ImageFile.read(folder.file("samples/step-00000003.png")).shape
    #expect(sink.images.first?.shape == written)
    #expect(sink.values[3]?["eval/energy-distance"] != nil)
  }
}
