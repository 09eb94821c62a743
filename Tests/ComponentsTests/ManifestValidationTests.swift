import BuiltInComponents
import DistillCore
import DistillPipeline
import Foundation
import Testing

@Suite struct ManifestValidationTests {
  let registry = ComponentRegistry.standard()

  func problems(_ json: JSONValue) -> [String] {
    do {
      _ = try Manifest.decode(json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
      return []
    } catch let error as ManifestError {
      return error.problems.map(\.description)
    } catch {
      return ["unexpected \(error)"]
    }
  }

  func edited(_ edits: [String]) -> JSONValue {
    var json = toyManifestJSON(output: "/tmp/unused")
    for text in edits { try! ManifestOverride(parsing: text).apply(to: &json) }
    return json
  }

  @Test func theToyManifestIsValidAndDefaultsAreFilledIn() throws {
    let manifest = try Manifest.decode(
      toyManifestJSON(output: "/tmp/x"), source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
    #expect(manifest.training.steps == 20)
    #expect(manifest.training.generatorEvery == 1)
    #expect(manifest.losses[0].string("real") == "real")
    #expect(manifest.losses[0].numbers("timestepRange") == [0.02, 0.98])
    #expect(manifest.schedule.type == "ddpm" && manifest.schedule.int("steps") == 1000)
    #expect(manifest.metrics.map(\.type) == ["energy-distance", "mode-coverage"])
  }

  @Test func everyProblemIsReportedWithItsJSONPath() {
    let found = problems(
      edited([
        "losses[0].weight=\"high\"", "training.stepz=5", "generator.type=mlpp", "training.batchSize=0",
        "evaluation.metrics[0]=\"energy-distanse\"", "scores.real.extra=1",
      ]))
    #expect(found.contains("losses[0].weight: expected a number in [0, 1000000], found \"high\""))
    #expect(found.contains { $0.hasPrefix("training.stepz: unknown parameter") && $0.contains("did you mean \"steps\"") })
    #expect(found.contains { $0.hasPrefix("generator.type: unknown generator \"mlpp\"") && $0.contains("did you mean \"mlp\"") })
    #expect(found.contains("training.batchSize: expected an integer in [1, inf], found 0"))
    #expect(found.contains { $0.hasPrefix("scores.real.extra: unknown parameter of \"teacher\"") })
    #expect(found.contains { $0.hasPrefix("evaluation.metrics[0].type: unknown metric") })
    #expect(found.count == 6)
    // References are checked once the entries themselves are valid.
    let reference = problems(edited(["losses[0].fake=fak"]))
    #expect(reference.count == 1)
    #expect(reference.first?.hasPrefix("losses[0].fake: no scores entry \"fak\" (did you mean \"fake\"?)") == true)
  }

  @Test func missingRequiredKeysAndWrongShapesAreNamed() {
    var json = toyManifestJSON(output: "/tmp/x")
    guard case .object(var object) = json else { return }
    object["generator"] = nil
    object["losses"] = .array([])
    json = .object(object)
    let found = problems(json)
    #expect(found.contains { $0.hasPrefix("generator: missing required parameter") })
    #expect(found.contains("losses: expected at least one loss entry"))
    #expect(problems(edited(["teacher.means=[[1, 2], [3]]"])) == ["teacher.means: rows of unequal length (2 and 1)"])
    #expect(problems(.array([])) == [": expected a JSON object, found an array of 0"].map { $0.hasPrefix(":") ? String($0.dropFirst(2)) : $0 })
  }

  @Test func malformedJSONGivesLineAndColumn() throws {
    let folder = temporaryFolder()
    let path = (folder as NSString).appendingPathComponent("bad.json")
    try Data("{\n  \"seed\": 1,\n  \"name\" \"x\"\n}".utf8).write(to: URL(fileURLWithPath: path))
    #expect {
      try Manifest.load(path: path, registry: registry)
    } throws: { error in
      "\(error)".contains("bad.json") && "\(error)".contains("line 3")
    }
  }

  @Test func aMissingTeacherFolderIsReportedBeforeTraining() {
    let found = problems(edited(["teacher={\"type\": \"folder\", \"path\": \"no/such/teacher\"}"]))
    #expect(found == ["teacher.path: no such file or folder: /tmp/no/such/teacher"])
  }

  @Test func buildFailuresNameTheEntry() throws {
    let json = edited(["scores.fake.init=teacher"])
    let manifest = try Manifest.decode(json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
    #expect {
      try AssembledPipeline.assemble(manifest, registry: registry)
    } throws: { error in
      guard let error = error as? ManifestError else { return false }
      return error.problems.count == 1 && error.problems[0].path == "scores.fake.init"
        && error.problems[0].message.contains("analytic teacher")
    }
  }

  @Test func overridesParseDottedPathsAndJSONValues() throws {
    let override = try ManifestOverride(parsing: "losses[1].weight=0.5")
    #expect(override.steps == [.key("losses"), .index(1), .key("weight")])
    #expect(override.value == .number(0.5))
    #expect(try ManifestOverride(parsing: "name=my-run").value == .string("my-run"))
    #expect(try ManifestOverride(parsing: "teacher.means=[[0,0]]").value == .array([.array([.number(0), .number(0)])]))
    var json = toyManifestJSON(output: "/tmp/x")
    try ManifestOverride(parsing: "evaluation.new.deep=1").apply(to: &json)
    #expect(throws: ManifestOverrideError.self) { try ManifestOverride(parsing: "losses[5].weight=1").apply(to: &json) }
    #expect(throws: ManifestOverrideError.self) { try ManifestOverride(parsing: "seed.x=1").apply(to: &json) }
    #expect(
      throws: ManifestOverrideError(text: "training.steps", expected: "PATH=VALUE, e.g. training.steps=200", found: #"no "=""#)
    ) { try ManifestOverride(parsing: "training.steps") }
    #expect(throws: ManifestOverrideError.self) { try ManifestOverride(parsing: "losses[x]=1") }
  }

  @Test func theSchemaListsEveryRegisteredComponentIncludingANewOne() {
    let extended = ComponentRegistry.standard(adding: [ConstantLoss.self])
    let schema = ManifestSchema.schema(extended).text(pretty: false)
    for kind in ComponentKind.allCases {
      for id in extended.ids(of: kind) { #expect(schema.contains("{\"const\":\"\(id)\"}"), "\(id)") }
    }
    #expect(schema.contains("\"const\":\"constant-test-loss\""))
    #expect(!ManifestSchema.schema(registry).text(pretty: false).contains("constant-test-loss"))
    let listing = ComponentListing.text(extended, kinds: [.loss])
    #expect(listing.contains("constant-test-loss: a test loss"))
    #expect(listing.contains("value (a number in [-1000000000, 1000000000]; default 1): the value"))
  }
}

/// A loss for tests: a constant value (NaN from `nanAtStep` on) that still depends on the generator.
enum ConstantLoss: LossComponent {
  static let id = "constant-test-loss"
  static let summary = "a test loss"
  static let parameters: [ParameterSpec] = [
    ParameterSpec("value", .number(-1e9...1e9), default: .number(1), "the value"),
    .optional("nanAtStep", .integer(0...Int.max), "the step from which it is NaN"),
  ]

  final class Term: LossTerm {
    let value: Float
    let nanAtStep: Int?
    init(value: Float, nanAtStep: Int?) {
      self.value = value
      self.nanAtStep = nanAtStep
    }
    func loss(_ context: StepContext) throws -> Tensor {
      let x = context.generated()
      let bad = nanAtStep.map { context.step >= $0 } ?? false
      return x.mean() * 0 + (bad ? Float.nan : value)
    }
  }

  static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
    Term(value: entry.float("value"), nanAtStep: entry.optionalInt("nanAtStep"))
  }
}

@Suite struct ComponentDocsTests {
  @Test func docsManifestListsEveryComponentAsTheRegistryDescribesIt() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/manifest.md")
    let text = try String(contentsOf: url, encoding: .utf8)
    let start = try #require(text.range(of: "## Components\n"))
    var section = String(text[start.upperBound...])
    if let next = section.range(of: "\n## ") { section = String(section[..<next.lowerBound]) }
    let generated = ComponentListing.text(.standard(), markdown: true)
    #expect(
      section.contains(generated.trimmingCharacters(in: .newlines)),
      "docs/manifest.md's Components section differs from `pipeline components --markdown`; regenerate it")
  }
}
