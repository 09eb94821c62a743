import DistillCore
import DistillDiffusion
import DistillNN
import DistillPipeline

/// A plain MLP from noise to a sample, for vector data (the 2-D toy): `offset + MLP(z)`,
/// with the last layer's initial weights scaled by `initialScale` so that a small value
/// starts the generator concentrated near `offset`.
public final class MLPSampleGenerator: Generator {
  public let module: Module
  let mlp: MLP
  let offset: Tensor?
  public let noiseShape: [Int]
  public let sampleShape: [Int]
  public let configJSON: JSONValue

  init(mlp: MLP, offset: [Double]?, noiseShape: [Int], sampleShape: [Int], config: JSONValue) {
    self.mlp = mlp
    self.module = mlp
    self.offset = offset.map { Tensor(shape: [1] + sampleShape, scalars: $0.map(Float.init)) }
    self.noiseShape = noiseShape
    self.sampleShape = sampleShape
    self.configJSON = config
  }

  /// One network evaluation; the generator is unconditional.
  public func sample(_ noise: Tensor, condition: Condition, progress: (_ done: Int, _ total: Int) -> Void) -> Tensor {
    let n = noise.shape[0]
    let out = mlp(noise.reshaped([n, noiseShape.reduce(1, *)])).reshaped([n] + sampleShape)
    progress(1, 1)
    return offset.map { out + $0 } ?? out
  }
}

public enum MLPGenerator: GeneratorComponent {
  public static let id = "mlp"
  public static let summary = "an MLP from noise to a sample (vector data); starts near `offset` when initialScale is small"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("width", .integer(1...65536), default: .number(128), "hidden width"),
    ParameterSpec("depth", .integer(1...64), default: .number(3), "hidden layers"),
    .choice("activation", Activation.self, default: .silu, "hidden activation"),
    .optional("noiseDimension", .integer(1...1_000_000), "values of noise per sample (default: the sample's)"),
    ParameterSpec("initialScale", .number(0...100), default: .number(1), "factor on the last layer's initial weights"),
    .optional("offset", .numbers(count: nil), "added to every output (default: none)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any Generator {
    guard let sampleShape = context.sampleShape else {
      throw DistillError.invalidValue(
        location: entry.path, expected: "a teacher or data source that fixes the sample shape", found: "neither")
    }
    let size = sampleShape.reduce(1, *)
    let noiseSize = entry.optionalInt("noiseDimension") ?? size
    if entry.has("offset"), entry.numbers("offset").count != size {
      throw DistillError.invalidValue(
        location: "\(entry.path).offset", expected: "\(size) numbers (one per sample value)",
        found: "\(entry.numbers("offset").count)")
    }
    var rng = context.initialisationRNG(for: entry.path)
    let mlp = MLP(
      inputSize: noiseSize, width: entry.int("width"), depth: entry.int("depth"), outputSize: size,
      activation: entry.choice("activation"), using: &rng)
    let scale = entry.float("initialScale")
    if scale != 1, let last = mlp.namedParameters().last(where: { $0.name.hasSuffix("weight") }) {
      last.parameter.assign(last.parameter.value * scale)
    }
    return MLPSampleGenerator(
      mlp: mlp, offset: entry.has("offset") ? entry.numbers("offset") : nil, noiseShape: [noiseSize],
      sampleShape: sampleShape, config: entry.resolvedJSON)
  }
}
