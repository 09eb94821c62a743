// Checks the collectives across real processes. Run it under a launcher:
//
//   mpirun --allow-run-as-root --oversubscribe -np 2 .build/release/mpi-selftest
//
// Every rank prints one `rank R PASS|FAIL <check>: <detail>` line per check and exits 1 if
// any failed. DistillDistributedTests runs it and reads those lines; alone (one process)
// every check holds trivially.

import DistillCore
import DistillDistributed

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
import Foundation  // String(format:) for the bench figures

/// The largest float difference the data-parallel run may show against one process: the
/// two compute the same sums in a different order (two half-batch means, then their mean,
/// against one full-batch mean), so they differ by rounding alone.
let trainingTolerance: Float = 1e-5

struct Checker {
  let rank: Int
  var failures = 0

  mutating func check(_ name: String, _ passed: Bool, _ detail: String) {
    print("rank \(rank) \(passed ? "PASS" : "FAIL") \(name): \(detail)")
    if !passed { failures += 1 }
  }
}

func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
  zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// Gradients that depend on the rank, one `nil` on odd ranks and one `nil` everywhere.
func checkGradientMean(_ communicator: any Communicator, _ checker: inout Checker) throws {
  let (rank, size) = (Float(communicator.rank), Float(communicator.size))
  let shapes = [[3, 4], [5], [2, 2], [7], [1]]
  let parameters = shapes.enumerated().map { ("p\($0.offset)", Parameter(.zeros($0.element))) }
  for (k, entry) in parameters.enumerated() where k != 3 && !(k == 2 && communicator.rank % 2 == 1) {
    let count = entry.1.value.count
    entry.1.grad = Tensor(shape: entry.1.shape, scalars: (0..<count).map { Float(k * 100 + $0) + 10 * rank })
  }
  // 24 bytes per bucket: several buckets, and p0 (48 bytes) alone in one larger than the cap.
  let reducer = try GradientReducer(parameters, communicator: communicator, bucketBytes: 24)
  try reducer.allreduceMean()
  var worst: Float = 0
  var layoutOK = true
  let meanRank = (size - 1) / 2
  let ranksWithP2 = Float((communicator.size + 1) / 2)
  for (k, entry) in parameters.enumerated() where k != 3 {
    guard let grad = entry.1.grad else {
      layoutOK = false
      continue
    }
    let expected: [Float] = (0..<grad.count).map { i in
      if k == 2 {
        // Present on even ranks only; odd ranks count as zeros.
        let evenRankSum = stride(from: 0, to: communicator.size, by: 2).reduce(Float(0)) { $0 + 10 * Float($1) }
        return (ranksWithP2 * Float(k * 100 + i) + evenRankSum) / size
      }
      return Float(k * 100 + i) + 10 * meanRank
    }
    worst = max(worst, maxDifference(grad.scalars, expected))
  }
  checker.check(
    "allreduce-mean", layoutOK && worst <= 1e-5 && parameters[3].1.grad == nil,
    "\(reducer.plan.buckets.count) buckets, max error \(worst), all-nil gradient stays nil: \(parameters[3].1.grad == nil)")

  var tensors = [Tensor([rank, 2 * rank]), Tensor(shape: [2, 2], scalars: [1, 2, 3, 4].map { $0 * (rank + 1) })]
  try communicator.allreduceMean(&tensors, bucketBytes: 8)
  let expected = [meanRank, 2 * meanRank] + [1, 2, 3, 4].map { $0 * (meanRank + 1) }
  let error = maxDifference(tensors[0].scalars + tensors[1].scalars, expected)
  checker.check("allreduce-mean-tensors", error <= 1e-6, "max error \(error)")

  let sums = try communicator.allreduceSum([Double(communicator.rank), 1, 0.25])
  let expectedSums = [Double(communicator.size * (communicator.size - 1) / 2), Double(communicator.size), 0.25 * Double(communicator.size)]
  checker.check("allreduce-sum-doubles", sums == expectedSums, "\(sums), expected \(expectedSums)")
}

func checkBroadcast(_ communicator: any Communicator, _ checker: inout Checker) throws {
  let text = Array("from rank \(communicator.rank)\(String(repeating: "!", count: communicator.rank))".utf8)
  let received = try communicator.broadcast(text)
  checker.check("broadcast-bytes", received == Array("from rank 0".utf8), String(decoding: received, as: UTF8.self))

  var rng = RandomGenerator(seed: 7).fork(UInt64(communicator.rank))
  let parameters = [("w", Parameter(.normal([4, 3], using: &rng))), ("b", Parameter(.normal([4], using: &rng)))]
  let reducer = try GradientReducer(parameters, communicator: communicator, bucketBytes: 16)
  try reducer.broadcastValues()
  var rootRng = RandomGenerator(seed: 7).fork(0)
  let rootValues = Tensor.normal([4, 3], using: &rootRng).scalars + Tensor.normal([4], using: &rootRng).scalars
  let values = parameters[0].1.value.scalars + parameters[1].1.value.scalars
  checker.check("broadcast-parameters", values == rootValues, "rank 0's \(values.count) values, bitwise: \(values == rootValues)")
}

/// `steps` of SGD with momentum on `y = x W^T + b`, mean squared error over `rows` of the batch.
func train(
  _ weight: Parameter, _ bias: Parameter, x: Tensor, y: Tensor, rows: Range<Int>, steps: Int,
  reducer: GradientReducer?
) throws {
  let optimizer = SGD([("weight", weight), ("bias", bias)], learningRate: 0.05, momentum: 0.9)
  let (xs, ys) = (x.sliced(axis: 0, rows), y.sliced(axis: 0, rows))
  for _ in 0..<steps {
    optimizer.zeroGrad()
    let loss = (Tensor.linear(xs, weight: weight.value, bias: bias.value) - ys).square().mean()
    loss.backward()
    try reducer?.allreduceMean()
    optimizer.step()
  }
}

/// Each rank trains on its share of the batch; the result must match one process on all of it.
func checkDataParallelSGD(_ communicator: any Communicator, _ checker: inout Checker) throws {
  let perRank = 4
  let batch = perRank * communicator.size
  var data = RandomGenerator(seed: 11)
  let x = Tensor.normal([batch, 3], using: &data)
  let trueWeight = Tensor([[1.5, -2, 0.5], [0.25, 1, -1]])
  let y = Tensor.linear(x, weight: trueWeight, bias: Tensor([0.3, -0.7])) + Tensor.normal([batch, 2], std: 0.1, using: &data)

  // Rank-dependent start: only the broadcast makes the ranks agree.
  var rng = RandomGenerator(seed: 3).fork(UInt64(communicator.rank))
  let weight = Parameter(.normal([2, 3], std: 0.5, using: &rng))
  let bias = Parameter(.zeros([2]))
  let reducer = try GradientReducer([("weight", weight), ("bias", bias)], communicator: communicator)
  try reducer.broadcastValues()
  let (startWeight, startBias) = (weight.value.detached(), bias.value.detached())

  let rank = communicator.rank
  try train(weight, bias, x: x, y: y, rows: rank * perRank..<(rank + 1) * perRank, steps: 30, reducer: reducer)
  let parallel = weight.value.scalars + bias.value.scalars

  let (referenceWeight, referenceBias) = (Parameter(startWeight), Parameter(startBias))
  try train(referenceWeight, referenceBias, x: x, y: y, rows: 0..<batch, steps: 30, reducer: nil)
  let single = referenceWeight.value.scalars + referenceBias.value.scalars
  let error = maxDifference(parallel, single)
  let moved = maxDifference(single, startWeight.scalars + startBias.scalars)
  checker.check(
    "data-parallel-sgd", error <= trainingTolerance && moved > 0.1,
    "\(communicator.size) ranks x \(perRank) rows vs 1 process x \(batch) rows, 30 steps: max weight difference \(error) "
      + "(tolerance \(trainingTolerance)), weights moved \(moved)")

  var rootFinal = parallel
  try communicator.broadcast(&rootFinal)
  checker.check("ranks-identical", rootFinal == parallel, "final weights bitwise equal to rank 0's: \(rootFinal == parallel)")
}

func seconds() -> Double {
  var now = timespec()
  clock_gettime(CLOCK_MONOTONIC, &now)
  return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
}

/// `--bench`: time of one all-reduce by size, and of `GradientReducer.allreduceMean` over a
/// UNet-like list of parameters (figures for docs/distributed.md, not checks).
func bench(_ communicator: any Communicator) throws {
  for mebibytes in [1, 4, 25, 100] {
    var buffer = [Float](repeating: 1, count: mebibytes << 18)
    let repeats = 10
    try buffer.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }  // warm-up
    try communicator.barrier()
    let start = seconds()
    for _ in 0..<repeats { try buffer.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) } }
    let each = (seconds() - start) / Double(repeats)
    if communicator.isMain {
      print("allreduce \(mebibytes) MiB: \(String(format: "%.2f", each * 1e3)) ms, \(String(format: "%.2f", Double(mebibytes << 20) / each / 1e9)) GB/s of buffer")
    }
  }
  // 240 parameters, 17.7 Mi floats (68 MiB) in all: weights of 147 456 floats and biases of 384.
  let parameters = (0..<120).flatMap { k in
    [("\(k).weight", Parameter(.ones([384, 384]))), ("\(k).bias", Parameter(.ones([384])))]
  }
  for entry in parameters { entry.1.grad = .ones(entry.1.shape) }
  let floats = parameters.reduce(0) { $0 + $1.1.value.count }
  for bucketMebibytes in [1, 25] {
    let reducer = try GradientReducer(parameters, communicator: communicator, bucketBytes: bucketMebibytes << 20)
    try reducer.allreduceMean()
    try communicator.barrier()
    let start = seconds()
    for _ in 0..<5 { try reducer.allreduceMean() }
    let each = (seconds() - start) / 5
    if communicator.isMain {
      print("GradientReducer \(parameters.count) parameters, \((floats * 4) >> 20) MiB, \(bucketMebibytes) MiB buckets (\(reducer.plan.buckets.count)): \(String(format: "%.1f", each * 1e3)) ms")
    }
  }
}

func run() -> Int32 {
  let communicator: any Communicator
  do {
    communicator = try communicatorFromEnvironment()
  } catch {
    print("mpi-selftest: \(error)")
    return 2
  }
  if communicator.isMain { print("backend: \(communicator.backend)") }
  if CommandLine.arguments.contains("--bench") {
    do {
      try bench(communicator)
      try communicator.finalize()
      return 0
    } catch {
      print("rank \(communicator.rank) bench error: \(error)")
      communicator.abort(exitCode: 3)
    }
  }
  var checker = Checker(rank: communicator.rank)
  do {
    try checkGradientMean(communicator, &checker)
    try checkBroadcast(communicator, &checker)
    try checkDataParallelSGD(communicator, &checker)
    try communicator.barrier()
    try communicator.finalize()
  } catch {
    print("rank \(communicator.rank) FAIL error: \(error)")
    communicator.abort(exitCode: 3)
  }
  return checker.failures == 0 ? 0 : 1
}

exit(run())
