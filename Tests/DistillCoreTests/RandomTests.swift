import Foundation
import DistillTestSupport
import Testing

@testable import DistillCore

@Suite struct RandomTests {
  /// Known-answer vectors for philox4x32_R(10, ctr, key) from Random123's kat_vectors.
  @Test func philoxMatchesRandom123KnownAnswers() {
    let cases: [((UInt32, UInt32, UInt32, UInt32), (UInt32, UInt32), [UInt32])] = [
      ((0, 0, 0, 0), (0, 0), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]),
      (
        (0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), (0xffff_ffff, 0xffff_ffff),
        [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
      ),
      (
        (0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), (0xa409_3822, 0x299f_31d0),
        [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
      ),
    ]
    for (counter, key, expected) in cases {
      let w = Philox.block(counter, key: key)
      #expect([w.0, w.1, w.2, w.3] == expected)
    }
  }

  @Test func uniformIsTheHigh24BitsOfTheStream() {
    var rng = RandomGenerator(seed: 0)
    let u = rng.uniform(count: 6)
    // Block 0 under key 0 is the first known-answer vector; block 1 supplies elements 4 and 5.
    let first: [UInt32] = [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
    #expect(Array(u.prefix(4)) == first.map { Float($0 >> 8) / Float(1 << 24) })
    let w = Philox.block(1, key: (0, 0))
    #expect(Array(u.suffix(2)) == [w.0, w.1].map { Float($0 >> 8) / Float(1 << 24) })
    #expect(rng.counter == 2)
    #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
  }

  @Test func elementDependsOnlyOnKeyAndBlock() {
    // Drawing 10 then 7 equals drawing from counters 0 and 3 (10 elements use 3 blocks).
    var a = RandomGenerator(seed: 7)
    _ = a.normal(count: 10)
    let next = a.normal(count: 7)
    var b = RandomGenerator(state: .init(seed: 7, counter: 3))
    #expect(b.normal(count: 7) == next)
    // A longer draw starts with a shorter one.
    var c = RandomGenerator(seed: 7)
    var d = RandomGenerator(seed: 7)
    #expect(Array(c.uniform(count: 1000).prefix(13)) == d.uniform(count: 13))
  }

  @Test func parallelFillMatchesAnySplitOfTheBlocks() {
    let count = 300_001  // above the parallel threshold, with a partial last block
    var rng = RandomGenerator(seed: 123)
    let start = rng.counter
    let uniform = rng.uniform(count: count)
    let normal = rng.normal(count: count)
    let ints = rng.integers(count: count, in: -5..<1000)
    let key = RandomGenerator(seed: 123).key
    let blocks4 = (count + 3) / 4
    let blocks2 = (count + 1) / 2
    // Sequential reference: one thread, and an irregular split into chunks done out of order.
    for splits in [[0, blocks4], [0, 1, 17, 4096, 50_000, blocks4 - 1, blocks4]] {
      var u = [Float](repeating: -1, count: count)
      var n = [Float](repeating: -1, count: count)
      u.withUnsafeMutableBufferPointer { out in
        for k in (0..<(splits.count - 1)).reversed() {
          RandomKernels.fill(
            out.baseAddress!, count: count, key: key, start: start, blocks: splits[k]..<splits[k + 1],
            .uniform(low: 0, span: 1))
        }
      }
      n.withUnsafeMutableBufferPointer { out in
        for k in 0..<(splits.count - 1) {
          RandomKernels.fill(
            out.baseAddress!, count: count, key: key, start: start &+ UInt64(blocks4), blocks: splits[k]..<splits[k + 1],
            .normal(mean: 0, std: 1))
        }
      }
      #expect(u == uniform)
      #expect(n == normal)
    }
    var i = [Int](repeating: 0, count: count)
    i.withUnsafeMutableBufferPointer { out in
      for chunk in [0..<3, 3..<blocks2 / 2, blocks2 / 2..<blocks2] {
        RandomKernels.integers(
          out.baseAddress!, count: count, key: key, start: start &+ UInt64(2 * blocks4), lower: -5, n: 1005,
          blocks: chunk)
      }
    }
    #expect(i == ints)
    #expect(rng.counter == UInt64(2 * blocks4 + blocks2))
  }

  @Test func normalMomentsAreTight() {
    var rng = RandomGenerator(seed: 2024)
    let z = rng.normal(count: 100_000).map(Double.init)
    let mean = z.reduce(0, +) / Double(z.count)
    let variance = z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(z.count - 1)
    let skew = z.reduce(0) { $0 + pow($1 - mean, 3) } / Double(z.count) / pow(variance, 1.5)
    let kurtosis = z.reduce(0) { $0 + pow($1 - mean, 4) } / Double(z.count) / (variance * variance)
    // Standard errors: mean 0.0032, std 0.0022, skew 0.0077, kurtosis 0.015; bounds are ~5 sigma.
    #expect(abs(mean) < 0.016)
    #expect(abs(variance.squareRoot() - 1) < 0.011)
    #expect(abs(skew) < 0.04)
    #expect(abs(kurtosis - 3) < 0.08)
    // Tail mass beyond 1.96 sigma is 5%.
    let tail = Double(z.filter { abs($0) > 1.959964 }.count) / Double(z.count)
    #expect(abs(tail - 0.05) < 0.0035)
  }

  @Test func uniformAndIntegerHistogramsAreFlat() {
    var rng = RandomGenerator(seed: 99)
    let u = rng.uniform(count: 100_000)
    let mean = u.reduce(0.0) { $0 + Double($1) } / Double(u.count)
    #expect(abs(mean - 0.5) < 0.005)  // sd of the mean 0.0009
    var bins = [Int](repeating: 0, count: 10)
    for x in u { bins[Int(x * 10)] += 1 }
    #expect(bins.allSatisfy { abs($0 - 10_000) < 500 })  // sd 95
    let ints = rng.integers(count: 100_000, in: 3..<13)
    #expect(ints.allSatisfy { (3..<13).contains($0) })
    var counts = [Int](repeating: 0, count: 10)
    for k in ints { counts[k - 3] += 1 }
    #expect(counts.allSatisfy { abs($0 - 10_000) < 500 })
    // Extreme ranges do not trap.
    let wide = rng.integers(count: 1000, in: Int.min..<Int.max)
    #expect(wide.contains { $0 < 0 } && wide.contains { $0 > 0 })
    #expect(rng.integers(count: 5, in: 4..<5) == [4, 4, 4, 4, 4])
  }

  @Test func stateRoundTripResumesTheSameContinuation() throws {
    var rng = RandomGenerator(seed: 0xDEAD_BEEF_CAFE)
    _ = rng.normal(count: 37)
    _ = rng.integers(count: 3, in: 0..<1000)
    let data = try JSONEncoder().encode(rng.state)
    var resumed = RandomGenerator(state: try JSONDecoder().decode(RandomGenerator.State.self, from: data))
    #expect(resumed == rng)
    #expect(resumed.uniform(count: 9) == rng.uniform(count: 9))
    #expect(resumed.normal(count: 11) == rng.normal(count: 11))
    #expect(Tensor.normal([3, 5], mean: 1, std: 2, using: &resumed) == Tensor.normal([3, 5], mean: 1, std: 2, using: &rng))
    // The generator itself is Codable too.
    let whole = try JSONDecoder().decode(RandomGenerator.self, from: JSONEncoder().encode(rng))
    #expect(whole == rng)
  }

  @Test func forkedStreamsAreDeterministicAndDistinct() {
    var base = RandomGenerator(seed: 5)
    let rank0 = base.fork(0)
    _ = base.uniform(count: 100)
    #expect(base.fork(0) == rank0)  // independent of what the parent has drawn
    var streams = (0..<4).map { base.fork(UInt64($0)) }
    #expect(Set(streams.map(\.seed)).count == 4)
    #expect(!streams.map(\.seed).contains(base.seed))
    let draws = (0..<4).map { streams[$0].uniform(count: 8) }
    #expect(Set(draws.map { $0.map(\.bitPattern) }).count == 4)
    // Independent streams are uncorrelated.
    var a = base.fork(10)
    var b = base.fork(11)
    let x = a.normal(count: 50_000)
    let y = b.normal(count: 50_000)
    let correlation = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / 50_000
    #expect(abs(correlation) < 0.02)  // sd 0.0045
  }

  @Test func tensorFactoriesScaleTheStream() {
    var a = RandomGenerator(seed: 11)
    var b = RandomGenerator(seed: 11)
    let t = Tensor.uniform([2, 3], low: -2, high: 4, using: &a)
    #expect(t.shape == [2, 3])
    expectClose(t.scalars, b.uniform(count: 6).map { -2 + 6 * $0 })
    let n = Tensor.normal([5], mean: 3, std: 0.5, using: &a)
    expectClose(n.scalars, b.normal(count: 5).map { 3 + 0.5 * $0 })
    let k = Tensor.randomIntegers([7], in: 0..<1000, using: &a)
    #expect(k.scalars == b.integers(count: 7, in: 0..<1000).map(Float.init))
    #expect(a == b)
    #expect(Tensor.normal([0], using: &a).count == 0)
    #expect(a == b)
  }
}
