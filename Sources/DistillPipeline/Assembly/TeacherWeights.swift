import DistillCore
import DistillDiffusion

/// The `weightFormat` parameter of a teacher component that loads a network: the format its
/// product weights are held in once the manifest is built (docs/teachers.md, "Weights in
/// bfloat16").
public let teacherWeightsParameter = ParameterSpec.choice(
  "weightFormat", WeightFormat.self, default: .fp32,
  "the format of the frozen network's product weights (Linear, convolutions): \"bf16\" holds them in bfloat16, half the memory, products on the bfloat16 kernels (needs AVX512-BF16); networks trained from a copy of the teacher still start from its float32 weights")

/// Holds the product weights of `teacher`'s network in `format` (``Module/holdProductWeights(in:)``).
///
/// - Throws: ``DistillError/invalidValue(location:expected:found:)`` at `location` for `bf16`
///   and a teacher without a network (an analytic one), or on a machine where bf16 cannot run
///   (``WeightFormat/isSupported``).
public func holdWeights(of teacher: any Denoiser, in format: WeightFormat, location: String) throws {
  guard format == .bf16 else { return }
  guard let module = (teacher as? any SavableDenoiser)?.weightsModule else {
    throw DistillError.invalidValue(
      location: location, expected: "a teacher with a network for \"bf16\" (its product weights held in bfloat16)",
      found: "the teacher \"\(teacher.summary)\", which has none")
  }
  try requireSupported(format, location: location)
  module.holdProductWeights(in: format)
}

/// Throws ``DistillError/invalidValue(location:expected:found:)`` at `location` where `format`
/// cannot run on this machine (``WeightFormat/isSupported``).
public func requireSupported(_ format: WeightFormat, location: String) throws {
  guard !format.isSupported else { return }
  throw DistillError.invalidValue(
    location: location, expected: "fp32 on this machine (bf16 needs a CPU with AVX512-BF16 and Distillery's own product kernel)",
    found: format.rawValue)
}

extension Manifest {
  /// The problem with the teacher's `weightFormat` on this machine, if any.
  static func teacherWeightsProblem(_ teacher: ComponentEntry?, bf16Supported: Bool) -> ManifestProblem? {
    guard let teacher, teacher.has("weightFormat"), teacher.choice("weightFormat") as WeightFormat == .bf16, !bf16Supported
    else { return nil }
    return ManifestProblem(
      "\(teacher.path).weightFormat",
      "\"bf16\" needs a CPU with AVX512-BF16 (vdpbf16ps) and Distillery's own product kernel (not DISTILL_GEMM=blas); this machine has neither or not both: use \"fp32\"")
  }
}

extension BuildContext {
  /// The format the manifest asks the teacher's weights in: its entry's `weightFormat`, `fp32`
  /// for a teacher component that has no such parameter.
  var teacherWeights: WeightFormat {
    guard let entry = manifest.teacher, entry.has("weightFormat") else { return .fp32 }
    return entry.choice("weightFormat")
  }

  /// Holds the teacher's product weights in the manifest's format, once every component is
  /// built: a generator or score that starts as a copy of the teacher has copied its float32
  /// weights by then.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` at `teacher.weightFormat`
  ///   for `bf16` and a teacher without a network, or one whose network a component trains.
  func holdTeacherWeights() throws {
    guard teacherWeights == .bf16, let teacher, let entry = manifest.teacher else { return }
    let location = "\(entry.path).weightFormat"
    if let module = (teacher as? any SavableDenoiser)?.weightsModule {
      let own = Set(module.parameters().map(ObjectIdentifier.init))
      let trained = (generatorNetwork.map { [$0] } ?? []) + networks
      if let network = trained.first(where: { network in
        network.module.parameters().contains { own.contains(ObjectIdentifier($0)) }
      }) {
        throw DistillError.invalidValue(
          location: location, expected: "a frozen teacher for \"bf16\" (a trained network keeps float32 weights)",
          found: "its network trained as \"\(network.name)\"")
      }
    }
    try holdWeights(of: teacher, in: .bf16, location: location)
  }
}
