import Foundation
import DistillTestSupport
import Testing

@testable import DistillCore

// Golden values come from torch 2.15 (CPU) running the Python reproduced in the
// comments below. The shared setup, in Python:
//
//   import math, torch
//   def p0(n, shift=0.0): return torch.tensor([0.5 - 0.3 * i + shift for i in range(n)], dtype=torch.float32)
//   def grad(n, k, phase=0.0):
//       return torch.tensor([math.sin(0.7 * i + 1.3 * k + phase) * (1 + 0.1 * k) for i in range(n)], dtype=torch.float32)
//   def run(make, steps=6, skip=False):
//       a = torch.nn.Parameter(p0(6)); b = torch.nn.Parameter(p0(4, 0.25))
//       opt = make([a, b])
//       for k in range(1, steps + 1):
//           a.grad = grad(6, k)
//           b.grad = grad(4, k, 0.5) if not skip or k % 2 == 0 else None
//           opt.step()
//       return a.detach().tolist(), b.detach().tolist()
//
// Each golden is `run(make)` (both parameters get a gradient every step) and
// `run(make, skip=True)` (`b` has no gradient on odd steps, so it is skipped there).

/// `p0` of the Python setup.
private func initialValue(_ n: Int, shift: Double = 0) -> Tensor {
  Tensor((0..<n).map { Float(0.5 - 0.3 * Double($0) + shift) })
}

/// `grad` of the Python setup.
private func gradient(_ n: Int, step k: Int, phase: Double = 0) -> Tensor {
  Tensor((0..<n).map { Float(sin(0.7 * Double($0) + 1.3 * Double(k) + phase) * (1 + 0.1 * Double(k))) })
}

/// Two named parameters `a` [6] and `b` [4] as in the Python setup.
private func makeParameters() -> [NamedParameter] {
  [("a", Parameter(initialValue(6))), ("b", Parameter(initialValue(4, shift: 0.25)))]
}

/// Sets the step-`k` gradients (b's only on even steps when `skip`) and steps.
private func step(_ optimizer: Optimizer, _ k: Int, skip: Bool = false) {
  optimizer.zeroGrad()
  optimizer.parameters[0].parameter.grad = gradient(6, step: k)
  if !skip || k % 2 == 0 { optimizer.parameters[1].parameter.grad = gradient(4, step: k, phase: 0.5) }
  optimizer.step()
}

/// Runs steps 1...6 of `make` and compares with torch's `a` and `b`.
private func checkGolden(
  _ make: ([NamedParameter]) -> Optimizer, skip: Bool, a: [Float], b: [Float],
  sourceLocation: SourceLocation = #_sourceLocation
) {
  let optimizer = make(makeParameters())
  for k in 1...6 { step(optimizer, k, skip: skip) }
  expectClose(optimizer.parameters[0].parameter.value.scalars, a, rtol: 1e-6, atol: 1e-7, sourceLocation: sourceLocation)
  expectClose(optimizer.parameters[1].parameter.value.scalars, b, rtol: 1e-6, atol: 1e-7, sourceLocation: sourceLocation)
  #expect(optimizer.stepCount == 6, sourceLocation: sourceLocation)
}

@Suite struct SGDTests {
  // run(lambda ps: torch.optim.SGD(ps, lr=0.1)), and with skip=True
  @Test func plain() {
    let a: [Float] = [0.353206724, 0.0536212102, -0.17712009, -0.371590644, -0.579422593, -0.843963861]
    checkGolden({ SGD($0, learningRate: 0.1) }, skip: false, a: a, b: [0.59579581, 0.347465813, 0.147359237, -0.0515053384])
    checkGolden({ SGD($0, learningRate: 0.1) }, skip: true, a: a, b: [0.677758813, 0.441167116, 0.208729655, -0.0513292663])
  }

  // run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)), and with skip=True
  @Test func momentum() {
    let a: [Float] = [0.171630442, 0.0409976318, -0.0148538146, -0.110750832, -0.342686266, -0.742671847]
    let make = { SGD($0, learningRate: 0.1, momentum: 0.9) }
    checkGolden(make, skip: false, a: a, b: [0.530405283, 0.464331061, 0.391516715, 0.205113307])
    checkGolden(make, skip: true, a: a, b: [0.738612831, 0.552035093, 0.317468703, 0.004139164])
  }

  // run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.3)), and with skip=True
  @Test func dampening() {
    let a: [Float] = [0.121151626, -0.0519012921, -0.106481068, -0.158012688, -0.323354751, -0.665838957]
    let make = { SGD($0, learningRate: 0.1, momentum: 0.9, dampening: 0.3) }
    checkGolden(make, skip: false, a: a, b: [0.445703059, 0.367493391, 0.328087747, 0.204924807])
    checkGolden(make, skip: true, a: a, b: [0.737972319, 0.581117451, 0.362595916, 0.0440872498])
  }

  // run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)), and with skip=True
  @Test func nesterov() {
    let a: [Float] = [0.0576740988, -0.0894809291, -0.100488514, -0.111266382, -0.257840127, -0.612368524]
    let make = { SGD($0, learningRate: 0.1, momentum: 0.9, nesterov: true) }
    checkGolden(make, skip: false, a: a, b: [0.398160636, 0.360363871, 0.364724278, 0.268096596])
    checkGolden(make, skip: true, a: a, b: [0.66751039, 0.532998741, 0.359451503, 0.087395981])
  }

  // run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, weight_decay=0.05)), and with skip=True
  @Test func weightDecay() {
    let a: [Float] = [0.222496137, 0.0512348264, -0.0571103245, -0.182101965, -0.39547351, -0.727392018]
    let make = { SGD($0, learningRate: 0.1, momentum: 0.8, weightDecay: 0.05) }
    checkGolden(make, skip: false, a: a, b: [0.52020812, 0.40135622, 0.289518774, 0.106775641])
    checkGolden(make, skip: true, a: a, b: [0.71239084, 0.520866156, 0.290491283, -0.00779901026])
  }
}

@Suite struct AdamTests {
  // run(lambda ps: torch.optim.Adam(ps, lr=0.01)), and with skip=True
  @Test func adam() {
    let a: [Float] = [0.478963405, 0.18749091, -0.100411981, -0.374052316, -0.676217914, -0.982695997]
    let make = { Adam($0, learningRate: 0.01) }
    checkGolden(make, skip: false, a: a, b: [0.734514356, 0.44630906, 0.175053909, -0.124969304])
    checkGolden(make, skip: true, a: a, b: [0.743910432, 0.463574141, 0.162015468, -0.139193401])
  }

  // run(lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)), and with skip=True
  @Test func adamWithL2WeightDecay() {
    let a: [Float] = [0.47927773, 0.187547296, -0.100800112, -0.375010759, -0.67620182, -0.980066478]
    let make = { Adam($0, learningRate: 0.01, betas: (0.8, 0.99), epsilon: 1e-6, weightDecay: 0.1) }
    checkGolden(make, skip: false, a: a, b: [0.732551754, 0.443605065, 0.172216922, -0.127228126])
    checkGolden(make, skip: true, a: a, b: [0.742218077, 0.460700095, 0.160905138, -0.139388695])
  }

  // run(lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)), and with skip=True
  @Test func adamW() {
    let a: [Float] = [0.476059943, 0.186350018, -0.0998025164, -0.371768087, -0.672128201, -0.9767856]
    let make = { AdamW($0, learningRate: 0.01, weightDecay: 0.1) }
    checkGolden(make, skip: false, a: a, b: [0.730093122, 0.443638772, 0.174048811, -0.124176368])
    checkGolden(make, skip: true, a: a, b: [0.741675735, 0.462200582, 0.161545768, -0.138761967])
  }

  @Test func largeParameterTakesTheParallelPathWithTheSameResult() {
    // 300k elements split across threads must equal the same update done in small pieces.
    let n = 300_000
    let big = Parameter(testTensor([n], seed: 3))
    let initial = testTensor([n], seed: 3).scalars
    let pieces = (0..<3).map { j in Parameter(Tensor(Array(initial[(j * n / 3)..<((j + 1) * n / 3)]))) }
    let whole = AdamW([("w", big)], learningRate: 0.01)
    let split = AdamW(pieces.enumerated().map { ("w\($0.offset)", $0.element) }, learningRate: 0.01)
    for k in 1...3 {
      let g = testTensor([n], seed: UInt64(10 + k))
      big.grad = g
      for (j, piece) in pieces.enumerated() { piece.grad = Tensor(Array(g.scalars[(j * n / 3)..<((j + 1) * n / 3)])) }
      whole.step()
      split.step()
    }
    #expect(big.value.scalars == pieces.flatMap { $0.value.scalars })
  }
}

@Suite struct OptimizerStateTests {
  /// N steps, save, fresh optimizer and parameters loaded from the saved weights and state,
  /// M steps: bit for bit the same as N + M uninterrupted steps.
  private func checkResume(_ make: ([NamedParameter]) -> Optimizer) throws {
    let reference = make(makeParameters())
    for k in 1...7 { step(reference, k, skip: true) }

    let first = make(makeParameters())
    for k in 1...3 { step(first, k, skip: true) }
    let saved = first.stateDict()
    let savedWeights = first.parameters.map { $0.parameter.value }
    // The saved state is a snapshot: stepping on does not change it.
    let snapshot = saved.mapValues(\.scalars)
    step(first, 4)
    #expect(first.stateDict().mapValues(\.scalars) != snapshot)
    #expect(saved.mapValues(\.scalars) == snapshot)

    let resumed = make(zip(["a", "b"], savedWeights).map { ($0, Parameter($1)) })
    try resumed.loadStateDict(saved)
    #expect(resumed.stepCount == 3)
    for k in 4...7 { step(resumed, k, skip: true) }
    for (x, y) in zip(resumed.parameters, reference.parameters) {
      #expect(x.parameter.value.scalars == y.parameter.value.scalars)
    }
    #expect(resumed.stateDict().mapValues(\.scalars) == reference.stateDict().mapValues(\.scalars))
  }

  @Test func sgdResumesBitForBit() throws {
    try checkResume { SGD($0, learningRate: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01) }
  }

  @Test func adamResumesBitForBit() throws {
    try checkResume { Adam($0, learningRate: 0.01, weightDecay: 0.1) }
    try checkResume { AdamW($0, learningRate: 0.01) }
  }

  @Test func stateDictKeys() {
    let adam = Adam(makeParameters())
    #expect(Set(adam.stateDict().keys) == ["step", "a.step", "b.step"])
    step(adam, 1, skip: true)  // b has no gradient on odd steps: no state yet, as in PyTorch
    #expect(Set(adam.stateDict().keys) == ["step", "a.step", "b.step", "a.exp_avg", "a.exp_avg_sq"])
    #expect(adam.stateDict()["a.step"] == Tensor([1]))
    #expect(adam.stateDict()["b.step"] == Tensor([0]))
    let sgd = SGD(makeParameters(), learningRate: 0.1, momentum: 0.5)
    step(sgd, 2)
    #expect(Set(sgd.stateDict().keys) == ["step", "a.step", "b.step", "a.momentum_buffer", "b.momentum_buffer"])
    #expect(sgd.stateDict()["a.momentum_buffer"] == gradient(6, step: 2))
    let plain = SGD(makeParameters(), learningRate: 0.1)
    step(plain, 2)
    #expect(Set(plain.stateDict().keys) == ["step", "a.step", "b.step"])
  }

  @Test func loadingNamesEveryProblemAndChangesNothing() throws {
    let source = Adam(makeParameters())
    step(source, 1)
    var state = source.stateDict()
    state["a.exp_avg"] = nil
    state["b.exp_avg_sq"] = Tensor.zeros([5])
    state["step"] = Tensor([1.5])
    state["c.exp_avg"] = Tensor.zeros([1])

    let target = Adam(makeParameters())
    step(target, 1)
    let before = target.stateDict().mapValues(\.scalars)
    #expect {
      try target.loadStateDict(state)
    } throws: { error in
      guard case DistillError.stateDictMismatch(let problems) = error else { return false }
      return problems == [
        "'step' holds 1.5, expected a non-negative whole step count",
        "missing key 'a.exp_avg' (expected shape [6])",
        "'b.exp_avg_sq' has shape [5], expected [4]",
        "unexpected key 'c.exp_avg'",
      ]
    }
    #expect(target.stateDict().mapValues(\.scalars) == before)
    #expect(target.stepCount == 1)
  }

  @Test func zeroGradDropsEveryGradient() {
    let sgd = SGD(makeParameters(), learningRate: 0.1)
    step(sgd, 1)
    sgd.zeroGrad()
    #expect(sgd.parameters.allSatisfy { $0.parameter.grad == nil })
    let before = sgd.parameters.map { $0.parameter.value.scalars }
    sgd.step()  // nothing to do without gradients
    #expect(sgd.parameters.map { $0.parameter.value.scalars } == before)
  }
}

@Suite struct GradientClippingTests {
  // import math, torch
  // def grad(n, k, phase=0.0): ... (as in the optimizer setup)
  // a, b, c = (torch.nn.Parameter(torch.zeros(n)) for n in (6, 4, 3))   # c has no gradient
  // a.grad = grad(6, 1); b.grad = grad(4, 1, 0.5)
  // n = torch.nn.utils.clip_grad_norm_([a, b, c], max_norm)   # max_norm = 1.0, then 10.0
  @Test func clipsToMaxNormLikeTorch() {
    let a = Parameter(.zeros([6]))
    let b = Parameter(.zeros([4]))
    let c = Parameter(.zeros([3]))
    a.grad = gradient(6, step: 1)
    b.grad = gradient(4, step: 1, phase: 0.5)
    let norm = clipGradientNorm([a, b, c], maxNorm: 1)
    expectClose([norm], [2.56753325], rtol: 1e-6)
    expectClose(a.grad!.scalars, [0.412813962, 0.389567226, 0.183100909, -0.109480605, -0.350571692, -0.426783442], rtol: 1e-6)
    expectClose(b.grad!.scalars, [0.417222261, 0.25640139, -0.0250090361, -0.29465735], rtol: 1e-6)
    #expect(c.grad == nil)
    #expect(a.value == Tensor.zeros([6]))
  }

  @Test func leavesSmallGradientsUntouched() {
    let a = Parameter(.zeros([6]))
    let b = Parameter(.zeros([4]))
    let ga = gradient(6, step: 1)
    let gb = gradient(4, step: 1, phase: 0.5)
    a.grad = ga
    b.grad = gb
    let norm = clipGradientNorm([a, b], maxNorm: 10)
    expectClose([norm], [2.56753325], rtol: 1e-6)
    #expect(a.grad == ga && b.grad == gb)
  }

  @Test func clippingDoesNotWriteThroughSharedGradientStorage() {
    let a = Parameter(.zeros([3]))
    let g = Tensor([3, 4, 0])
    a.grad = g
    let norm = clipGradientNorm([a], maxNorm: 1)
    #expect(norm == 5)
    #expect(g == Tensor([3, 4, 0]))  // the caller's tensor is a value
    expectClose(a.grad!, Tensor([0.6, 0.8, 0]), rtol: 1e-6)
  }
}
