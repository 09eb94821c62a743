import DistillCore
import DistillPipeline
import Foundation
import ImageIO
import Testing

/// docs/errors.md, checked: every row whose test column says `catalogue` is run here through
/// the `pipeline` executable, in a scratch folder of its own, and must exit with the row's code
/// and print the row's message (the pieces between `…` in order, on standard error). A failing
/// command must also leave the scratch folder exactly as it found it: no output written, no
/// good output replaced or removed.
@Suite(.serialized) struct ErrorCatalogueTests {
  /// One row of docs/errors.md.
  struct Row {
    var id: String
    var message: String
    var exit: Int32
    var runHere: Bool
  }

  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

  /// The rows of every table of docs/errors.md: `| ID | case | `message` | exit | tests |`.
  static func catalogue() throws -> [Row] {
    let text = try String(contentsOfFile: root + "/docs/errors.md", encoding: .utf8)
    var rows: [Row] = []
    for line in text.split(separator: "\n") where line.hasPrefix("| ") {
      let cells = splitCells(String(line))
      guard cells.count == 5, cells[0].range(of: #"^[A-Z]+[0-9]+$"#, options: .regularExpression) != nil,
        let exit = Int32(cells[3])
      else { continue }
      let message = cells[2].trimmingCharacters(in: CharacterSet(charactersIn: "` "))
      rows.append(Row(id: cells[0], message: message, exit: exit, runHere: cells[4].contains("catalogue")))
    }
    return rows
  }

  /// Splits a Markdown table row on `|`, except `\|`.
  static func splitCells(_ line: String) -> [String] {
    var cells: [String] = []
    var current = ""
    var escaped = false
    for character in line.dropFirst() {
      if escaped {
        current.append(character == "|" ? "|" : "\\\(character)")
        escaped = false
      } else if character == "\\" {
        escaped = true
      } else if character == "|" {
        cells.append(current.trimmingCharacters(in: .whitespaces))
        current = ""
      } else {
        current.append(character)
      }
    }
    return cells
  }

  /// Whether `text` holds the pieces of `pattern` between `…`, in order.
  static func matches(_ text: String, _ pattern: String) -> Bool {
    var rest = text[...]
    for piece in pattern.components(separatedBy: "…") where !piece.isEmpty {
      guard let range = rest.range(of: piece) else { return false }
      rest = rest[range.upperBound...]
    }
    return true
  }

  /// Every file under `folder` with its bytes (folders as empty entries).
  static func snapshot(_ folder: String) -> [String: Data] {
    var result: [String: Data] = [:]
    for path in (try? FileManager.default.subpathsOfDirectory(atPath: folder)) ?? [] {
      var isDirectory: ObjCBool = false
      let full = folder + "/" + path
      _ = FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory)
      result[path] = isDirectory.boolValue ? Data() : FileManager.default.contents(atPath: full) ?? Data([0xFF])
    }
    return result
  }

  @Test func everyCatalogueRowGivesItsMessageAndExitCodeAndWritesNothing() throws {
    let rows = try Self.catalogue()
    #expect(rows.count >= 80, "docs/errors.md parsed: \(rows.count) rows")
    let byID = Dictionary(rows.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    #expect(byID.count == rows.count, "row ids are unique")
    let fixtures = try CatalogueFixtures()
    let cases = CatalogueCases.all
    let caseIDs = Set(cases.map(\.id))
    for row in rows where row.runHere && !caseIDs.contains(row.id) {
      Issue.record("docs/errors.md row \(row.id) says catalogue but has no case here")
    }
    for (id, setup) in cases {
      let scratch = try CatalogueScratch(fixtures: fixtures, id: id)
      let arguments = try setup(scratch)
      let before = Self.snapshot(scratch.path)
      let result = try scratch.run(arguments)
      let after = Self.snapshot(scratch.path)
      guard let row = byID[id], row.runHere else {
        Issue.record("\(id) is not a catalogue row of docs/errors.md; it exits \(result.status) with: \(result.error)")
        continue
      }
      #expect(result.status == row.exit, "\(id) \(arguments): exit \(result.status): \(result.error)")
      #expect(
        Self.matches(result.error, row.message), "\(id) \(arguments): expected \(row.message)\n got: \(result.error)")
      let changed = Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
      #expect(changed.isEmpty, "\(id) \(arguments) changed files although it failed: \(changed)")
    }
  }

  @Test func theCatalogueMatcherIsStrict() {
    #expect(Self.matches("error: a.json: 1 problem\n  x: expected 1", "a.json: 1 problem…x: expected 1"))
    #expect(!Self.matches("error: a.json: 1 problem\n  x: expected 1", "x: expected 1…a.json"))
    #expect(!Self.matches("error: a.json", "b.json"))
    #expect(Self.splitCells("| A1 | a \\| b | `m` | 2 | catalogue |") == ["A1", "a | b", "`m`", "2", "catalogue"])
    // The "wrote nothing" check sees a new file, a changed file and a removed one.
    let folder = temporaryFolder()
    _ = FileManager.default.createFile(atPath: folder + "/a", contents: Data("1".utf8))
    let before = Self.snapshot(folder)
    _ = FileManager.default.createFile(atPath: folder + "/a", contents: Data("2".utf8))
    #expect(Self.snapshot(folder) != before)
    _ = FileManager.default.createFile(atPath: folder + "/a", contents: Data("1".utf8))
    #expect(Self.snapshot(folder) == before)
    try? FileManager.default.createDirectory(atPath: folder + "/d", withIntermediateDirectories: false)
    #expect(Self.snapshot(folder) != before)
    try? FileManager.default.removeItem(atPath: folder + "/d")
    try? FileManager.default.removeItem(atPath: folder + "/a")
    #expect(Self.snapshot(folder) != before)
  }
}

/// What the rows start from, made once: a finished toy run, a trained MLP teacher folder, a
/// diffusers UNet folder, a pairs folder, an image.
struct CatalogueFixtures {
  let base: String
  var run: String { base + "/run" }
  var teacher: String { base + "/teacher" }
  var unet: String { ErrorCatalogueTests.root + "/Tests/DistillCoreTests/Fixtures/unet2d-small" }
  var pairs: String { base + "/pairs" }
  var image: String { base + "/image.png" }
  var imageFixtures: String { ErrorCatalogueTests.root + "/Tests/ImageIOTests/Fixtures" }
  var lpipsWeights: String {
    ErrorCatalogueTests.root + "/Tests/DistillNNTests/Fixtures/lpips-alex-randbackbone/weights.safetensors"
  }

  init() throws {
    base = temporaryFolder("catalogue-fixtures")
    let manifest = writeManifest(toyManifestJSON(steps: 20, output: base + "/unused"), in: base, name: "toy.json")
    let steps: [[String]] = [
      ["run", manifest, "--output", run, "--quiet"],
      [
        "run", ErrorCatalogueTests.root + "/Templates/manifests/train-teacher-toy.json", "--output", base + "/tt",
        "--quiet",
        "--set", "training.steps=2", "--set", "evaluation.every=2", "--set", "evaluation.samples=16",
      ],
      ["precompute", manifest, "--out", pairs, "--count", "10", "--steps", "5", "--shard-size", "4", "--quiet"],
    ]
    for arguments in steps {
      let result = try runPipeline(arguments)
      guard result.status == 0 else {
        throw DistillError.io(path: base, reason: "fixture \(arguments): \(result.error)")
      }
    }
    try FileManager.default.moveItem(atPath: base + "/tt/denoiser", toPath: teacher)
    var rng = RandomGenerator(seed: 1)
    try ImageFile.writePNG(Tensor.uniform([3, 32, 32], low: 0, high: 1, using: &rng), to: image)
  }
}

/// A row's own folder; the command runs there, so relative paths in messages are stable.
struct CatalogueScratch {
  let fixtures: CatalogueFixtures
  let path: String

  init(fixtures: CatalogueFixtures, id: String) throws {
    self.fixtures = fixtures
    path = fixtures.base + "/rows/" + id
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  func file(_ name: String) -> String { path + "/" + name }

  func write(_ name: String, _ text: String) throws { try write(name, Data(text.utf8)) }

  func write(_ name: String, _ data: Data) throws {
    try FileManager.default.createDirectory(
      atPath: (file(name) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try data.write(to: URL(fileURLWithPath: file(name)))
  }

  func copy(_ source: String, to name: String) throws {
    try FileManager.default.copyItem(atPath: source, toPath: file(name))
  }

  /// The toy manifest (output `run` beside it) with `overrides` applied, as `name`.
  @discardableResult
  func manifest(_ name: String = "m.json", _ overrides: [String] = [], removing: [String] = []) throws -> String {
    var json = toyManifestJSON(steps: 20, output: "run")
    for text in overrides { try ManifestOverride(parsing: text).apply(to: &json) }
    if case .object(var object) = json {
      for key in removing { object[key] = nil }
      json = .object(object)
    }
    try write(name, json.text())
    return name
  }

  /// A manifest distilling the teacher folder `teacher` into a small MLP.
  @discardableResult
  func teacherManifest(_ name: String = "tm.json") throws -> String {
    try write(
      name,
      """
      {"teacher": {"type": "folder", "path": "teacher"}, "generator": {"type": "mlp", "width": 8, "depth": 1},
       "scores": {"real": {"type": "teacher"}, "fake": {"type": "trained", "init": "new",
         "network": {"type": "mlp", "inputSize": 2, "width": 8, "depth": 1, "outputSize": 2}}},
       "losses": [{"type": "distribution-matching"}], "training": {"steps": 2, "batchSize": 8}}
      """)
    return name
  }

  /// A manifest training on the pairs folder `pairs` (data and regression loss).
  @discardableResult
  func pairsManifest(_ name: String = "pm.json") throws -> String {
    try write(
      name,
      """
      {"teacher": {"type": "gaussian-mixture", "means": [[-2, 0], [2, 0]], "std": 0.3},
       "generator": {"type": "mlp", "width": 8, "depth": 1}, "data": {"type": "pairs", "path": "pairs"},
       "losses": [{"type": "regression", "pairs": "pairs"}], "training": {"steps": 2, "batchSize": 4}}
      """)
    return name
  }

  /// Edits the JSON file `name` with `PATH=VALUE` overrides and removes top-level `removing`.
  func editJSON(_ name: String, _ overrides: [String], removing: [String] = []) throws {
    var json = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: file(name))), source: name)
    for text in overrides { try ManifestOverride(parsing: text).apply(to: &json) }
    if case .object(var object) = json {
      for key in removing { object[key] = nil }
      json = .object(object)
    }
    try write(name, json.text())
  }

  /// Rewrites the safetensors file `name` after `body` changed its tensors.
  func editSafetensors(_ name: String, _ body: (inout [String: Tensor]) -> Void) throws {
    let original = try SafetensorsFile.read(contentsOf: file(name))
    var tensors = try original.tensors()
    body(&tensors)
    try SafetensorsFile.write(tensors, metadata: original.metadata, to: file(name))
  }

  /// Overwrites bytes of `name` at `offset`.
  func patch(_ name: String, at offset: Int, _ bytes: [UInt8]) throws {
    var data = try Data(contentsOf: URL(fileURLWithPath: file(name)))
    data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    try write(name, data)
  }

  func truncate(_ name: String, to count: Int) throws {
    try write(name, try Data(contentsOf: URL(fileURLWithPath: file(name))).prefix(count))
  }

  /// Runs `pipeline` in this folder.
  func run(_ arguments: [String]) throws -> ProcessResult { try runPipeline(arguments, directory: path) }
}
