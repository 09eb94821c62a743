import DistillTestSupport
import Testing

@testable import DistillCore

@Suite struct EMATests {
  private func makeParameters() -> [NamedParameter] {
    [("w", Parameter(Tensor([[1, -2, 3], [0.5, 0, 4]]))), ("b", Parameter(Tensor([10, -10])))]
  }

  @Test func averagesMatchAHandComputationAndLeaveWeightsAlone() {
    let parameters = makeParameters()
    let ema = ExponentialMovingAverage(parameters, decay: 0.9)
    let w = parameters[0].parameter
    #expect(!ema.shadow(named: "w")!.sharesStorage(with: w.value))

    // Three "training steps" that overwrite the weights in place, each followed by update().
    let steps: [[Float]] = [[2, 2, 2, 2, 2, 2], [0, 1, 0, 1, 0, 1], [-3, 5, 7, 1, 1, 1]]
    var expected = [1.0, -2, 3, 0.5, 0, 4]
    for values in steps {
      w.value.withUnsafeMutableBufferPointer { buffer in
        for i in 0..<6 { buffer[i] = values[i] }
      }
      ema.update()
      expected = zip(expected, values).map { 0.9 * $0 + 0.1 * Double($1) }
      // The update only reads the weights.
      #expect(w.value.scalars == values)
    }
    // By hand, element 0: ((1·0.9 + 2·0.1)·0.9 + 0·0.1)·0.9 + (-3)·0.1 = 0.591.
    #expect(abs(expected[0] - 0.591) < 1e-12)
    expectClose(ema.shadow(named: "w")!.scalars, expected.map(Float.init), rtol: 1e-6, atol: 1e-7)
    #expect(ema.shadow(named: "w")!.shape == [2, 3])
    // b never changed, so its average stays put.
    #expect(ema.shadow(named: "b") == Tensor([10, -10]))
    #expect(ema.shadow(named: "nope") == nil)
    #expect(w.value.requiresGrad && parameters[1].parameter.value == Tensor([10, -10]))
  }

  @Test func optimizerStepsDoNotReachTheShadow() {
    let parameters = makeParameters()
    let ema = ExponentialMovingAverage(parameters, decay: 0.5)
    let before = ema.stateDict()
    let sgd = SGD(parameters, learningRate: 1)
    for entry in parameters { entry.parameter.grad = Tensor.ones(entry.parameter.shape) }
    sgd.step()
    #expect(ema.stateDict() == before)
    ema.update()
    expectClose(ema.shadow(named: "b")!, Tensor([9.5, -10.5]))
  }

  @Test func stateDictRoundTripAndCopy() throws {
    let parameters = makeParameters()
    let ema = ExponentialMovingAverage(parameters, decay: 0.99)
    parameters[1].parameter.assign(Tensor([0, 0]))
    ema.update()
    let state = ema.stateDict()
    #expect(Set(state.keys) == ["w", "b"])

    let other = ExponentialMovingAverage(makeParameters(), decay: 0.99)
    try other.loadStateDict(state)
    #expect(other.stateDict() == state)
    #expect(!other.shadow(named: "b")!.sharesStorage(with: state["b"]!))

    // Export into a fresh model; the shadows stay independent of it afterwards.
    let target = makeParameters()
    try ema.copy(to: target)
    #expect(target[1].parameter.value == Tensor([9.9, -9.9]))
    #expect(target[1].parameter.value.requiresGrad)
    target[1].parameter.assign(Tensor([1, 1]))
    #expect(ema.shadow(named: "b") == Tensor([9.9, -9.9]))
  }

  @Test func mismatchesAreNamed() {
    let ema = ExponentialMovingAverage(makeParameters(), decay: 0.9)
    #expect {
      try ema.loadStateDict(["w": Tensor.zeros([3, 2]), "extra": Tensor([1])])
    } throws: { error in
      (error as? DistillError) == .stateDictMismatch(problems: [
        "'w' has shape [3, 2], expected [2, 3]",
        "missing key 'b' (expected shape [2])",
        "unexpected key 'extra'",
      ])
    }
    #expect(ema.shadow(named: "b") == Tensor([10, -10]))
    #expect {
      try ema.copy(to: [("b", Parameter(.zeros([3]))), ("c", Parameter(.zeros([1])))])
    } throws: { error in
      (error as? DistillError) == .stateDictMismatch(problems: [
        "'b' has shape [3], the average [2]", "no moving average for 'c'",
      ])
    }
  }
}
