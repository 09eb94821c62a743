import DistillCore
import DistillTestSupport
import Testing

@testable import DistillDistributed

@Suite struct GradientReducerTests {
  /// Three parameters: rank-dependent gradients, one present on rank 0 only, one absent everywhere.
  @Test(arguments: [2, 3])
  func averagesGradientsOverRanks(size: Int) throws {
    let results = try InProcessWorld(size: size).run { communicator -> [[Float]?] in
      let r = Float(communicator.rank)
      let parameters = [("a", Parameter(.zeros([2, 3]))), ("b", Parameter(.zeros([4]))), ("c", Parameter(.zeros([5])))]
      parameters[0].1.grad = Tensor(shape: [2, 3], scalars: (0..<6).map { Float($0) + 10 * r })
      if communicator.rank == 0 { parameters[1].1.grad = Tensor([4, 8, 12, 16]) }
      let reducer = try GradientReducer(parameters, communicator: communicator, bucketBytes: 20)
      #expect(reducer.plan.buckets.count == 3)
      try reducer.allreduceMean()
      return parameters.map { $0.1.grad?.scalars }
    }
    let meanRank = Float(size - 1) / 2
    for grads in results {
      expectClose(grads[0]!, (0..<6).map { Float($0) + 10 * meanRank }, "rank-dependent")
      // Ranks without a gradient count as zeros: the mean of one full batch.
      expectClose(grads[1]!, [4, 8, 12, 16].map { $0 / Float(size) }, "present on rank 0 only")
      #expect(grads[2] == nil, "absent everywhere must stay nil so optimizers skip it")
    }
    #expect(results.allSatisfy { $0[0]! == results[0][0]! }, "every rank holds the same bits")
  }

  @Test func broadcastsRankZerosValues() throws {
    let results = try InProcessWorld(size: 3).run { communicator -> [Float] in
      var rng = RandomGenerator(seed: 5).fork(UInt64(communicator.rank))
      let parameters = [("w", Parameter(.normal([3, 2], using: &rng))), ("b", Parameter(.normal([2], using: &rng)))]
      try GradientReducer(parameters, communicator: communicator, bucketBytes: 8).broadcastValues()
      return parameters.flatMap { $0.1.value.scalars }
    }
    var rng = RandomGenerator(seed: 5).fork(0)
    let rankZero = Tensor.normal([3, 2], using: &rng).scalars + Tensor.normal([2], using: &rng).scalars
    #expect(results.allSatisfy { $0 == rankZero })
  }

  @Test func refusesDifferentParameterListsOnEveryRank() throws {
    let outcomes = try InProcessWorld(size: 2).run { communicator -> String? in
      let shape = communicator.rank == 0 ? [3] : [4]
      do {
        _ = try GradientReducer([("w", Parameter(.zeros(shape)))], communicator: communicator)
        return nil
      } catch let error as DistributedError {
        return error.description
      }
    }
    for message in outcomes {
      #expect(message?.contains("1 of 2 ranks differ from rank 0") == true, "\(message ?? "no error")")
    }
  }

  @Test func matchesOneProcessOnTheWholeBatch() throws {
    var data = RandomGenerator(seed: 1)
    let x = Tensor.normal([6, 4], using: &data)
    let y = Tensor.normal([6, 1], using: &data)
    let start = Tensor.normal([1, 4], using: &data)
    @Sendable func gradient(rows: Range<Int>, communicator: (any Communicator)?) throws -> [Float] {
      let w = Parameter(start)
      (x.sliced(axis: 0, rows).matmul(w.value, transposeOther: true) - y.sliced(axis: 0, rows)).square().mean().backward()
      if let communicator { try GradientReducer([("w", w)], communicator: communicator).allreduceMean() }
      return w.grad!.scalars
    }
    let whole = try gradient(rows: 0..<6, communicator: nil)
    let parts = try InProcessWorld(size: 3).run { try gradient(rows: $0.rank * 2..<$0.rank * 2 + 2, communicator: $0) }
    for part in parts { expectClose(part, whole, rtol: 1e-5, atol: 1e-6) }
  }
}

@Suite struct SingleProcessTests {
  @Test func collectivesLeaveValuesAsTheyAre() throws {
    let communicator = SingleProcessCommunicator()
    #expect(communicator.rank == 0 && communicator.size == 1 && communicator.isMain)
    #expect(try communicator.allreduceSum([1.5, -2]) == [1.5, -2])
    #expect(try communicator.allreduceMean([3]) == [3])
    #expect(try communicator.broadcast(Array("abc".utf8)) == Array("abc".utf8))
    var tensors = [Tensor([1, 2, 3])]
    try communicator.allreduceMean(&tensors)
    #expect(tensors[0].scalars == [1, 2, 3])
    try communicator.barrier()
    try communicator.finalize()
  }

  @Test func reducerKeepsGradientsAndTheirStorage() throws {
    let parameter = Parameter(.zeros([3]))
    parameter.grad = Tensor([1, 2, 3])
    let before = parameter.grad!
    let reducer = try GradientReducer([("p", parameter)], communicator: SingleProcessCommunicator())
    try reducer.allreduceMean()
    try reducer.broadcastValues()
    #expect(parameter.grad!.sharesStorage(with: before), "one process must not copy gradients")
    #expect(parameter.value.scalars == [0, 0, 0])
  }
}
