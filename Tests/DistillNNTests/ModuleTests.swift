import Foundation
import Testing

@testable import DistillNN

/// Weights from a formula both sides can compute: sin(0.37 i + k) / 2 for the k-th key in
/// sorted order, i running over the flattened tensor.
func formulaWeights(_ module: Module) -> [String: Tensor] {
  var result: [String: Tensor] = [:]
  for (k, (name, parameter)) in module.namedParameters().sorted(by: { $0.name < $1.name }).enumerated() {
    let n = parameter.value.count
    result[name] = Tensor(shape: parameter.shape, scalars: (0..<n).map { Float(sin(Double($0) * 0.37 + Double(k)) * 0.5) })
  }
  return result
}

@Suite struct ModuleTests {
  @Test func mlpKeysMatchPyTorchSequential() {
    var rng = RandomGenerator(seed: 0)
    let mlp = MLP(inputSize: 3, width: 5, depth: 2, outputSize: 2, using: &rng)
    #expect(mlp.namedParameters().map(\.name) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"])
    #expect(mlp.namedParameters().map(\.parameter.shape) == [[5, 3], [5], [5, 5], [5], [2, 5], [2]])
    #expect(mlp.parameterCount == 15 + 5 + 25 + 5 + 10 + 2)
  }

  @Test func mlpForwardMatchesPyTorch() throws {
    // python: net = Sequential(Linear(3,5), SiLU(), Linear(5,5), SiLU(), Linear(5,2)); weights as
    // formulaWeights; x = cos(0.21 * arange(12)).reshape(4, 3); net(x).flatten()
    var rng = RandomGenerator(seed: 0)
    let mlp = MLP(inputSize: 3, width: 5, depth: 2, outputSize: 2, using: &rng)
    try mlp.load(formulaWeights(mlp))
    let x = Tensor(shape: [4, 3], scalars: (0..<12).map { Float(cos(Double($0) * 0.21)) })
    let expected: [Float] = [
      -0.6376343965530396, -0.1886681616306305, -0.6097002029418945, -0.2637333869934082,
      -0.5748525857925415, -0.32060879468917847, -0.5731856822967529, -0.2698580026626587,
    ]
    let y = mlp(x)
    #expect(y.shape == [4, 2])
    #expect(zip(y.scalars, expected).allSatisfy { abs($0 - $1) < 1e-5 })
  }

  @Test func strictLoadNamesEveryProblemAndChangesNothing() {
    var rng = RandomGenerator(seed: 0)
    let linear = Linear(inputSize: 3, outputSize: 2, using: &rng)
    let before = linear.weight.value
    let weights: [String: Tensor] = ["weight": .zeros([3, 2]), "extra": .zeros([1])]
    #expect {
      try linear.load(weights)
    } throws: { error in
      guard case DistillError.stateDictMismatch(let problems) = error else { return false }
      return problems.count == 3
        && problems.contains { $0.contains("'weight'") && $0.contains("[3, 2]") && $0.contains("[2, 3]") }
        && problems.contains { $0.contains("'bias'") && $0.contains("missing") }
        && problems.contains { $0.contains("'extra'") && $0.contains("unexpected") }
    }
    #expect(linear.weight.value == before)
  }

  @Test func lenientLoadReportsMissingAndUnexpected() throws {
    var rng = RandomGenerator(seed: 0)
    let linear = Linear(inputSize: 3, outputSize: 2, using: &rng)
    let report = try linear.load(["weight": .ones([2, 3]), "other": .zeros([1])], strict: false)
    #expect(report.missing == ["bias"])
    #expect(report.unexpected == ["other"])
    #expect(linear.weight.value == .ones([2, 3]))
    #expect(linear.weight.value.requiresGrad)
  }

  @Test func lenientLoadStillRejectsWrongShapes() {
    var rng = RandomGenerator(seed: 0)
    let linear = Linear(inputSize: 3, outputSize: 2, using: &rng)
    #expect(throws: DistillError.self) { try linear.load(["weight": .ones([3, 3])], strict: false) }
  }

  @Test func trainAndEvalPropagateToChildren() {
    var rng = RandomGenerator(seed: 0)
    let mlp = MLP(inputSize: 2, width: 4, depth: 1, outputSize: 1, using: &rng)
    mlp.eval()
    #expect(!mlp.isTraining)
    #expect(mlp.layers.allSatisfy { !$0.isTraining })
    mlp.train()
    #expect(mlp.layers.allSatisfy { $0.isTraining })
  }

  @Test func linearInitialisationIsBoundedLikePyTorch() {
    var rng = RandomGenerator(seed: 3)
    let linear = Linear(inputSize: 16, outputSize: 64, using: &rng)
    let values = linear.weight.value.scalars
    #expect(values.allSatisfy { abs($0) <= 0.25 })
    #expect(values.contains { abs($0) > 0.2 })  // spread over the whole range, not clustered at 0
  }

  @Test func gradientsReachEveryParameter() {
    var rng = RandomGenerator(seed: 1)
    let mlp = MLP(inputSize: 2, width: 4, depth: 2, outputSize: 1, using: &rng)
    let x = Tensor.normal([8, 2], mean: 0, std: 1, using: &rng)
    mlp(x).square().mean().backward()
    #expect(mlp.parameters().allSatisfy { $0.grad != nil && $0.grad!.abs().sum().item > 0 })
  }

  @Test func embeddingGathersRowsAndScattersGradients() {
    var rng = RandomGenerator(seed: 0)
    let table = Embedding(count: 4, dimension: 3, using: &rng)
    let rows = table([2, 0, 2])
    #expect(rows.shape == [3, 3])
    #expect(Array(rows.scalars[0..<3]) == Array(table.weight.value.scalars[6..<9]))
    rows.sum().backward()
    #expect(table.weight.grad!.scalars == [1, 1, 1, 0, 0, 0, 2, 2, 2, 0, 0, 0])
  }

  @Test func sinusoidalEmbeddingMatchesDiffusers() {
    // python: diffusers get_timestep_embedding(t, 7, flip_sin_to_cos=True, downscale_freq_shift=0)
    let flipped = sinusoidalEmbedding([0, 1, 500, 999], dimension: 7, flipSinToCos: true, frequencyShift: 0)
    let expectedFlipped: [Float] = [
      1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5403023362159729, 0.9989229440689087, 0.9999976754188538,
      0.8414709568023682, 0.046399228274822235, 0.0021544331684708595, 0.0, -0.8838492631912231,
      -0.3466525673866272, 0.47378072142601013, -0.4677717983722687, -0.937993586063385, 0.880642831325531, 0.0,
      0.9996498227119446, -0.7286733388900757, -0.549264669418335, -0.02646075189113617, 0.684861421585083,
      0.8356484770774841, 0.0,
    ]
    #expect(zip(flipped.scalars, expectedFlipped).allSatisfy { abs($0 - $1) < 2e-5 })
    // python: get_timestep_embedding(t, 8, flip_sin_to_cos=False, downscale_freq_shift=1)
    let plain = sinusoidalEmbedding([3, 999], dimension: 8)
    let expectedPlain: [Float] = [
      0.14112000167369843, 0.13879810273647308, 0.006463258992880583, 0.0002999999560415745,
      -0.9899924993515015, 0.9903206825256348, 0.9999791383743286, 0.9999999403953552, -0.02646075189113617,
      0.684861421585083, 0.8356484770774841, 0.09973391145467758, 0.9996498227119446, -0.7286733388900757,
      -0.549264669418335, 0.9950141310691833,
    ]
    #expect(zip(plain.scalars, expectedPlain).allSatisfy { abs($0 - $1) < 2e-5 })
  }
}
