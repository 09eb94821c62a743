import BuiltInComponents
import DistillCore
import DistillDiffusion
import DistillTestSupport
import Foundation
import Testing

@testable import DistillPipeline

/// `teacher.weightFormat`: the folder teacher's product weights held in bfloat16 once the
/// manifest is built, the copies of it (generator, fake score) still starting from its float32
/// weights, and the cases validation and assembly refuse.
@Suite struct TeacherWeightFormatTests {
  static let teacherPath = coreFixtures.appendingPathComponent("unet2d-small").path

  /// DMD from the diffusers UNet fixture: generator and fake score copies of the teacher.
  static func manifestText(_ weightFormat: String?) -> String {
    let format = weightFormat.map { #", "weightFormat": "\#($0)""# } ?? ""
    return """
      {"teacher": {"type": "folder", "path": \(JSONValue.quoted(teacherPath))\(format)},
       "generator": {"type": "denoiser", "init": "teacher", "steps": 1},
       "scores": {"real": {"type": "teacher"}, "fake": {"type": "trained", "init": "teacher"}},
       "losses": [{"type": "distribution-matching"}], "training": {"steps": 1, "batchSize": 2}}
      """
  }

  static func decode(_ text: String, bf16Supported: Bool = ComputePrecision.bf16Supported) throws -> Manifest {
    try Manifest.decode(
      try JSONValue.parse(Data(text.utf8), source: "m.json"), source: "m.json", baseDirectory: "/tmp",
      fallbackName: "m", registry: .standard(), bf16Supported: bf16Supported)
  }

  /// The one problem of `body`'s `ManifestError`, or `nil`.
  static func problem(_ body: () throws -> Void) -> ManifestProblem? {
    do {
      try body()
    } catch let error as ManifestError where error.problems.count == 1 {
      return error.problems[0]
    } catch {
      Issue.record("unexpected error: \(error)")
    }
    return nil
  }

  @Test func theOptionRoundTripsThroughTheResolvedManifest() throws {
    func resolved(_ format: String?) throws -> JSONValue? {
      guard case .object(let teacher) = try Self.decode(Self.manifestText(format)).teacher!.resolvedJSON else {
        return nil
      }
      return teacher["weightFormat"]
    }
    #expect(try resolved(nil) == .string("fp32"))
    #expect(try resolved("fp32") == .string("fp32"))
    #expect(try resolved("bf16") == .string("bf16"))
  }

  @Test func anUnknownFormatAndAnAnalyticTeacherAreRefusedNamingTheKey() {
    let unknown = Self.problem { _ = try Self.decode(Self.manifestText("fp16")) }
    #expect(unknown?.path == "teacher.weightFormat" && unknown?.message.contains("\"bf16\"") == true)
    // The Gaussian-mixture teacher has no network: no such key (its `weights` are mixture weights).
    let analytic = Self.problem {
      _ = try Self.decode(
        #"{"teacher": {"type": "gaussian-mixture", "means": [[0, 0]], "weightFormat": "bf16"}, "generator": {"type": "mlp"}, "losses": [{"type": "denoising"}]}"#
      )
    }
    #expect(analytic?.path == "teacher.weightFormat", "\(String(describing: analytic))")
  }

  @Test func bf16WithoutTheInstructionsIsRefusedAtValidation() throws {
    let problem = Self.problem { _ = try Self.decode(Self.manifestText("bf16"), bf16Supported: false) }
    #expect(problem?.path == "teacher.weightFormat" && problem?.message.contains("AVX512-BF16") == true)
    _ = try Self.decode(Self.manifestText("bf16"), bf16Supported: true)
    _ = try Self.decode(Self.manifestText("fp32"), bf16Supported: false)
  }

  /// `DISTILL_GEMM=blas` leaves products to BLAS, which has no bf16: the CLI exits 2 naming the key.
  @Test func theCommandLineExitsTwoNamingTeacherWeightFormat() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let path = folder + "/m.json"
    try Self.manifestText("bf16").write(toFile: path, atomically: true, encoding: .utf8)
    var environment = ProcessInfo.processInfo.environment
    environment["DISTILL_GEMM"] = "blas"
    let result = try runPipeline(["validate", path], environment: environment)
    #expect(result.status == 2)
    #expect(result.error.contains("teacher.weightFormat") && result.error.contains("AVX512-BF16"), "\(result.error)")
    let sampling = try runPipeline(
      ["sample-teacher", "--teacher", Self.teacherPath, "--out", folder + "/x.safetensors", "--weight-format", "bf16"],
      environment: environment)
    #expect(sampling.status == 2)
    #expect(sampling.error.contains("--weight-format: expected fp32 on this machine"), "\(sampling.error)")
    #expect(!FileManager.default.fileExists(atPath: folder + "/x.safetensors"))
  }

  @Test(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
  func theTeacherIsHeldInBF16AndItsCopiesStartFromItsFloat32Weights() throws {
    let pipeline = try AssembledPipeline.assemble(try Self.decode(Self.manifestText("bf16")), registry: .standard())
    let reference = try loadTeacher(path: Self.teacherPath) as! any SavableDenoiser
    let exact = reference.weightsModule!
    let teacher = try #require((pipeline.teacher as? any SavableDenoiser)?.weightsModule)
    // The teacher: product weights in bfloat16 (about half the bytes), the rest float32.
    let products = teacher.parameters().filter(\.isProductWeight)
    let flags = teacher.parameters().map { ($0.isProductWeight, $0.isBFloat16) }
    #expect(!products.isEmpty && flags.allSatisfy { $0.0 == $0.1 })
    #expect(Double(teacher.parameterBytes) < 0.55 * Double(exact.parameterBytes))
    // The real score is that teacher.
    #expect(pipeline.scores["real"]?.denoiser === pipeline.teacher)
    // The copies: float32, the teacher file's weights to the bit, trained.
    let fake = try #require(pipeline.scores["fake"]?.denoiser as? any SavableDenoiser)
    let generator = try #require(pipeline.context.generatorNetwork?.module)
    for copy in [fake.weightsModule!, generator] {
      let held = copy.parameters().filter(\.isBFloat16).count
      #expect(held == 0)
      let weights = copy.stateDict()
      for (name, value) in exact.stateDict() { #expect(weights[name]!.scalars == value.scalars, "\(name)") }
    }
    // The held teacher's prediction is the float32 teacher's to bfloat16's precision.
    var rng = RandomGenerator(seed: 3)
    let x = Tensor.normal([2, 3, 16, 16], using: &rng)
    let held = withoutGradients { pipeline.teacher!(x, timesteps: [10, 900]) }.scalars
    let float32 = withoutGradients { reference(x, timesteps: [10, 900]) }.scalars
    let scale = float32.map(abs).max()!
    let error = zip(held, float32).map { abs($0 - $1) }.max()! / scale
    #expect(error < 2e-2 && error > 1e-6, "relative error \(error)")
  }

  @Test(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
  func aTeacherWithoutANetworkIsRefusedAtAssembly() throws {
    let folder = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let mixture = try GaussianMixtureDenoiser(
      means: [[0, 0], [1, 1]], std: 0.5, weights: nil, schedule: ScheduleConfig().schedule, prediction: .epsilon,
      location: "test")
    try mixture.save(folder: folder + "/teacher")
    let text = Self.manifestText("bf16").replacingOccurrences(
      of: JSONValue.quoted(Self.teacherPath), with: JSONValue.quoted(folder + "/teacher"))
      .replacingOccurrences(of: #""init": "teacher", "steps": 1"#, with: #""init": "new", "network": {"type": "mlp", "inputSize": 2, "width": 8, "depth": 1, "outputSize": 2}, "steps": 1"#)
      .replacingOccurrences(of: #"{"type": "trained", "init": "teacher"}"#, with: #"{"type": "trained", "init": "new", "network": {"type": "mlp", "inputSize": 2, "width": 8, "depth": 1, "outputSize": 2}}"#)
    let problem = Self.problem { _ = try AssembledPipeline.assemble(try Self.decode(text), registry: .standard()) }
    #expect(problem?.path == "teacher.weightFormat", "\(String(describing: problem))")
    #expect(problem?.message.contains("a teacher with a network") == true)
  }

  /// A loss that trains the teacher's own network (no built-in component does): refused, since
  /// a trained network keeps float32 weights.
  enum TeacherTuningLoss: LossComponent {
    static let id = "teacher-tuning-test-loss"
    static let summary = "a test loss that trains the teacher's network"
    static let parameters: [ParameterSpec] = []

    final class Term: LossTerm {
      func loss(_ context: StepContext) throws -> Tensor { context.generated().mean() }
    }

    static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any LossTerm {
      let teacher = try context.requireTeacher(for: entry) as! any SavableDenoiser
      _ = try context.addNetwork(name: "tuned-teacher", module: teacher.weightsModule!, optimizer: nil)
      return Term()
    }
  }

  @Test(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
  func aTeacherWhoseNetworkIsTrainedIsRefusedAtAssembly() throws {
    let registry = ComponentRegistry.standard(adding: [TeacherTuningLoss.self])
    let text = Self.manifestText("bf16").replacingOccurrences(
      of: #"[{"type": "distribution-matching"}]"#, with: #"[{"type": "teacher-tuning-test-loss"}]"#)
    let manifest = try Manifest.decode(
      try JSONValue.parse(Data(text.utf8), source: "m.json"), source: "m.json", baseDirectory: "/tmp",
      fallbackName: "m", registry: registry)
    let problem = Self.problem { _ = try AssembledPipeline.assemble(manifest, registry: registry) }
    #expect(problem?.path == "teacher.weightFormat", "\(String(describing: problem))")
    #expect(problem?.message.contains("trained as \"tuned-teacher\"") == true, "\(String(describing: problem))")
  }

  /// ADD with the teacher's encoder as the discriminator's feature network: the generator's
  /// adversarial gradient passes back through the frozen bf16 teacher to its samples; the
  /// teacher's weights take none and stay as they were.
  @Test(.enabled(if: ComputePrecision.bf16Supported, "needs AVX512-BF16"))
  func adversarialGradientsPassThroughABF16Teacher() throws {
    func step(_ format: String) throws -> (values: [String: Double], teacher: [Float], unchanged: Bool) {
      let pipeline = try AssembledPipeline.assemble(
        try Self.decode(
          """
          {"teacher": {"type": "folder", "path": \(JSONValue.quoted(Self.teacherPath)), "weightFormat": "\(format)"},
           "data": {"type": "shapes", "size": 16},
           "generator": {"type": "denoiser", "init": "teacher", "timesteps": [999, 499], "stepping": "renoise"},
           "losses": [{"type": "adversarial-distillation", "featureTimestep": 300}],
           "training": {"steps": 1, "batchSize": 4}}
          """), registry: .standard())
      let teacher = (pipeline.teacher as! any SavableDenoiser).weightsModule!
      let before = teacher.parameters().flatMap(\.value.scalars)
      let trainer = Trainer(
        pipeline: pipeline, folder: RunFolder(path: "/nonexistent"), progress: ProgressReporter(style: .silent))
      let values = try trainer.trainStep(0)
      let held = teacher.parameters().filter(\.isBFloat16)
      #expect(held.allSatisfy { $0.grad == nil })
      return (values, before, teacher.parameters().flatMap(\.value.scalars) == before)
    }
    let bf16 = try step("bf16")
    let fp32 = try step("fp32")
    #expect(bf16.unchanged)
    let key = "add/adversarial-sample-gradient-norm"
    let (held, full) = (try #require(bf16.values[key]), try #require(fp32.values[key]))
    #expect(held > 0 && abs(held - full) < 0.05 * full, "\(key): bf16 teacher \(held), fp32 teacher \(full)")
  }
}
