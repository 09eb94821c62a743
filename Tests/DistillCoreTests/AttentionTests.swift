import DistillTestSupport
import Foundation
import Testing

@testable import DistillCore

/// `softmax(scale q kᵀ + mask) v` per head in Double, the definition the paths are held to.
private func referenceAttention(
  _ query: Tensor, _ key: Tensor, _ value: Tensor, heads: Int, scale: Float, mask: Tensor? = nil
) -> [Float] {
  let (n, lq, width) = (query.shape[0], query.shape[1], query.shape[2])
  let lk = key.shape[1]
  let d = width / heads
  let (q, k, v) = (query.scalars, key.scalars, value.scalars)
  let m = mask?.scalars
  var out = [Float](repeating: 0, count: n * lq * width)
  for b in 0..<n {
    for h in 0..<heads {
      for i in 0..<lq {
        var scores = (0..<lk).map { j -> Double in
          var dot = 0.0
          for c in 0..<d { dot += Double(q[(b * lq + i) * width + h * d + c]) * Double(k[(b * lk + j) * width + h * d + c]) }
          return Double(scale) * dot + (m.map { Double($0[i * lk + j]) } ?? 0)
        }
        let largest = scores.max()!
        scores = scores.map { Foundation.exp($0 - largest) }
        let total = scores.reduce(0, +)
        for c in 0..<d {
          var sum = 0.0
          for j in 0..<lk { sum += scores[j] * Double(v[(b * lk + j) * width + h * d + c]) }
          out[(b * lq + i) * width + h * d + c] = Float(sum / total)
        }
      }
    }
  }
  return out
}

/// ``Tensor/attention(query:key:value:heads:scale:mask:)``: each path against the definition,
/// and which path runs when.
@Suite struct AttentionTests {
  /// (n, heads, lq, lk, head channels): partial query blocks (32 a block), several key blocks
  /// (128 a block) so that the online softmax rescales, several groups of query blocks (512
  /// queries a group), channels not a multiple of 8, a single key.
  static let shapes: [(Int, Int, Int, Int, Int)] = [
    (1, 2, 37, 77, 40), (2, 3, 33, 5, 4), (1, 1, 64, 300, 12), (1, 2, 1000, 260, 8), (3, 1, 20, 1, 24), (1, 4, 130, 129, 80),
  ]

  @Test(arguments: shapes, [AttentionPath.fused, .blocked, .whole])
  func eachPathComputesTheDefinition(shape: (Int, Int, Int, Int, Int), path: AttentionPath) throws {
    try #require(path != .fused || GemmKernel.isOwn, "the fused kernel needs AVX-512")
    let (n, heads, lq, lk, d) = shape
    var rng = RandomGenerator(seed: UInt64(lq * lk + d))
    let q = Tensor.normal([n, lq, heads * d], mean: 0, std: 2, using: &rng)
    let k = Tensor.normal([n, lk, heads * d], mean: 0, std: 1, using: &rng)
    let v = Tensor.normal([n, lk, heads * d], mean: 0, std: 1, using: &rng)
    let scale = 1 / Float(d).squareRoot()
    let result = withoutGradients {
      Tensor.attention(query: q, key: k, value: v, heads: heads, scale: scale, mask: nil, path: path)
    }
    #expect(result.shape == [n, lq, heads * d])
    let difference = largestDifference(result.scalars, referenceAttention(q, k, v, heads: heads, scale: scale))
    #expect(difference <= 2e-6, "max |difference| \(difference)")
  }

  /// Scores whose maximum grows block after block (each key larger than the last, 1024 keys,
  /// scores from 0 to about 330): every key block rescales the sums so far, and the early
  /// blocks' exponentials underflow. Scores this large carry float32's rounding (an ulp of 330
  /// is 3e-5) into their exponentials on any path, so the fused kernel is held to the whole
  /// matrix's own distance from the definition.
  @Test(.enabled(if: GemmKernel.isOwn, "the fused kernel needs AVX-512"))
  func growingMaximaRescaleTheSums() {
    var rng = RandomGenerator(seed: 9)
    let (lq, lk, d) = (40, 1024, 16)
    let q = Tensor.normal([1, lq, d], mean: 1, std: 0.1, using: &rng)
    let k = Tensor(shape: [1, lk, d], scalars: (0..<lk * d).map { Float($0 / d) * 0.02 })
    let v = Tensor.normal([1, lk, d], mean: 0, std: 1, using: &rng)
    let expected = referenceAttention(q, k, v, heads: 1, scale: 1)
    func distance(_ path: AttentionPath) -> Float {
      let result = withoutGradients { Tensor.attention(query: q, key: k, value: v, heads: 1, scale: 1, mask: nil, path: path) }
      return largestDifference(result.scalars, expected)
    }
    let (fused, whole) = (distance(.fused), distance(.whole))
    #expect(fused <= whole + 2e-6, "max |difference| fused \(fused), whole \(whole)")
  }

  @Test func aMaskIsAddedToEveryHeadsScores() {
    var rng = RandomGenerator(seed: 3)
    let (lq, lk, width) = (6, 6, 8)
    let q = Tensor.normal([2, lq, width], mean: 0, std: 1, using: &rng)
    let k = Tensor.normal([2, lk, width], mean: 0, std: 1, using: &rng)
    let v = Tensor.normal([2, lk, width], mean: 0, std: 1, using: &rng)
    let causal = Tensor(shape: [lq, lk], scalars: (0..<lq * lk).map { $0 % lk > $0 / lk ? -1e9 : 0 })
    let expected = referenceAttention(q, k, v, heads: 2, scale: 0.5, mask: causal)
    for recording in [false, true] {
      let result =
        recording
        ? Tensor.attention(query: q.requiringGrad(), key: k, value: v, heads: 2, scale: 0.5, mask: causal)
        : withoutGradients { Tensor.attention(query: q, key: k, value: v, heads: 2, scale: 0.5, mask: causal) }
      let difference = largestDifference(result.scalars, expected)
      #expect(difference <= 1e-6, "recording \(recording): max |difference| \(difference)")
    }
  }

  /// Recorded: the whole score matrix (gradients). Nothing recorded: fused where it can run,
  /// else blocks of query rows once the scores pass 32 MiB. Inside a recomputed body, in both
  /// runs: what recording computes, so that the replay sees the values of the first run.
  @Test func thePathFollowsWhatIsRecorded() {
    func path(recording: Bool = false, masked: Bool = false, lq: Int = 3072) -> AttentionPath {
      Tensor.attentionPath(recording: recording, masked: masked, n: 1, heads: 2, lq: lq, lk: 3072)
    }
    // 2 heads x 3072 x 3072 scores = 72 MiB: more than one block.
    #expect(4 * 2 * 3072 * 3072 > Tensor.attentionScoreBlockBytes)
    #expect(path(recording: true) == .whole)
    #expect(path() == (GemmKernel.isOwn ? .fused : .blocked))
    #expect(path(masked: true) == .blocked)
    #expect(path(masked: true, lq: 8) == .whole)
    #expect(GradientMode.$usesRecordedKernels.withValue(true) { path() } == .whole)
    if ComputePrecision.bf16Supported {
      #expect(withComputePrecision(.bf16) { path() } == .blocked)
    }
  }

  /// A sequence whose scores take more than one 32 MiB block (2 heads x 3072 x 3072 = 72 MiB):
  /// the blocked and fused paths give what the whole matrix gives (several key blocks and
  /// groups of query blocks in the fused kernel).
  @Test func longSequencesAgreeWithTheWholeMatrix() {
    var rng = RandomGenerator(seed: 2)
    let x = Tensor.normal([1, 3072, 16], mean: 0, std: 1, using: &rng)
    #expect(Tensor.attentionScoreRows(n: 1, heads: 2, lk: 3072) < 3072)
    func run(_ path: AttentionPath) -> [Float] {
      withoutGradients { Tensor.attention(query: x, key: x * 0.5, value: x, heads: 2, scale: 0.35, mask: nil, path: path) }
        .scalars
    }
    let whole = run(.whole)
    // The blocked path sums as the whole one does; the fused one in another order.
    for (path, tolerance) in GemmKernel.isOwn ? [(AttentionPath.blocked, Float(1e-6)), (.fused, 2e-6)] : [(.blocked, 1e-6)] {
      let difference = largestDifference(run(path), whole)
      #expect(difference <= tolerance, "\(path): max |difference| \(difference)")
    }
  }

  /// Gradients through the recorded path against central differences.
  @Test func gradientsMatchFiniteDifferences() {
    var rng = RandomGenerator(seed: 5)
    let q = Tensor.normal([1, 5, 4], mean: 0, std: 1, using: &rng).requiringGrad()
    let k = Tensor.normal([1, 7, 4], mean: 0, std: 1, using: &rng).requiringGrad()
    let v = Tensor.normal([1, 7, 4], mean: 0, std: 1, using: &rng).requiringGrad()
    let weights = Tensor.normal([1, 5, 4], mean: 0, std: 1, using: &rng)
    func loss(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> Tensor {
      (Tensor.attention(query: q, key: k, value: v, heads: 2, scale: 0.7) * weights).sum()
    }
    loss(q, k, v).backward()
    for (index, input) in [q, k, v].enumerated() {
      let analytic = input.grad!.scalars
      for element in [0, 3, input.count - 1] {
        func value(_ delta: Float) -> Float {
          var inputs = [q, k, v].map { $0.detached() }
          var scalars = inputs[index].scalars
          scalars[element] += delta
          inputs[index] = Tensor(shape: input.shape, scalars: scalars)
          return withoutGradients { loss(inputs[0], inputs[1], inputs[2]).item }
        }
        let numeric = (value(1e-2) - value(-1e-2)) / 2e-2
        #expect(abs(numeric - analytic[element]) <= 2e-3, "input \(index) element \(element): \(numeric) vs \(analytic[element])")
      }
    }
  }
}
