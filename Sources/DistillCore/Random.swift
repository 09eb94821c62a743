#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The Philox 4x32-10 counter-based bijection (Salmon et al., "Parallel random numbers: as
/// easy as 1, 2, 3", SC 2011), bit-compatible with `philox4x32_R(10, ctr, key)` of Random123.
@usableFromInline
enum Philox {
  @usableFromInline static let m0: UInt32 = 0xD251_1F53
  @usableFromInline static let m1: UInt32 = 0xCD9E_8D57
  @usableFromInline static let w0: UInt32 = 0x9E37_79B9
  @usableFromInline static let w1: UInt32 = 0xBB67_AE85

  /// The 128-bit output block for counter `c` under key `k`.
  @inlinable @inline(__always)
  static func block(
    _ c: (UInt32, UInt32, UInt32, UInt32), key k: (UInt32, UInt32)
  ) -> (UInt32, UInt32, UInt32, UInt32) {
    var (c0, c1, c2, c3) = c
    var (k0, k1) = k
    for round in 0..<10 {
      if round > 0 {
        k0 &+= w0
        k1 &+= w1
      }
      let p0 = UInt64(m0) &* UInt64(c0)
      let p1 = UInt64(m1) &* UInt64(c2)
      let hi0 = UInt32(truncatingIfNeeded: p0 >> 32)
      let lo0 = UInt32(truncatingIfNeeded: p0)
      let hi1 = UInt32(truncatingIfNeeded: p1 >> 32)
      let lo1 = UInt32(truncatingIfNeeded: p1)
      (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
    }
    return (c0, c1, c2, c3)
  }

  /// Block number `index` of the stream keyed by `key`: counter words `(lo, hi, 0, 0)`.
  @inlinable @inline(__always)
  static func block(_ index: UInt64, key: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
    block((UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32), 0, 0), key: key)
  }
}

/// A counter-based random number generator (Philox 4x32-10) whose whole state is two
/// integers, so it round-trips exactly through a checkpoint.
///
/// The stream is the sequence of 128-bit Philox blocks `philox(counter: n, key: seed)`,
/// n = 0, 1, 2, ...; ``counter`` is the number of blocks consumed. Each call takes whole
/// blocks, and element `i` of a call depends only on `(seed, counter + i / perBlock)`:
///
/// - ``uniform(count:)`` and ``normal(count:)``: 4 elements per block;
/// - ``integers(count:in:)``: 2 elements per block (64 bits each).
///
/// A call of `count` elements therefore advances ``counter`` by `ceil(count / perBlock)`,
/// leftover words of the last block are dropped, and large fills run in parallel with a
/// result that does not depend on the number of threads.
///
/// ```swift
/// var rng = RandomGenerator(seed: 42)
/// let noise = Tensor.normal([4, 3, 32, 32], using: &rng)
/// let saved = rng.state             // checkpoint
/// var resumed = RandomGenerator(state: saved)  // continues exactly where rng is
/// let rank3 = RandomGenerator(seed: 42).fork(3)  // an independent per-rank stream
/// ```
public struct RandomGenerator: Sendable, Codable, Hashable {
  /// The Philox key (low word first).
  public let seed: UInt64
  /// The number of 128-bit blocks consumed so far.
  public var counter: UInt64

  /// The complete state of a generator: restore it with ``RandomGenerator/init(state:)``.
  public struct State: Sendable, Codable, Hashable {
    public var seed: UInt64
    public var counter: UInt64
    public init(seed: UInt64, counter: UInt64) {
      self.seed = seed
      self.counter = counter
    }
  }

  /// A generator at the start of the stream keyed by `seed`.
  public init(seed: UInt64) {
    self.seed = seed
    counter = 0
  }

  /// A generator that continues exactly where the one that produced `state` was.
  public init(state: State) {
    seed = state.seed
    counter = state.counter
  }

  /// The state to checkpoint; see ``init(state:)``.
  public var state: State { State(seed: seed, counter: counter) }

  @usableFromInline var key: (UInt32, UInt32) {
    (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
  }

  /// An independent generator for sub-stream `stream` (e.g. a data-parallel rank).
  ///
  /// Its seed is derived from this generator's seed and `stream` alone (one Philox block
  /// with a counter that ordinary draws never use, `(lo(stream), hi(stream), 0x5EEDF04C,
  /// 0xFFFFFFFF)`), so `fork` does not consume from `self` and the same `(seed, stream)`
  /// always gives the same child, whatever has been drawn from `self`.
  public func fork(_ stream: UInt64) -> RandomGenerator {
    let w = Philox.block(
      (UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32), 0x5EED_F04C, 0xFFFF_FFFF),
      key: key)
    return RandomGenerator(seed: UInt64(w.1) << 32 | UInt64(w.0))
  }

  /// Reserves the blocks for `count` elements drawn `perBlock` at a time and returns the first.
  @inlinable
  mutating func take(_ count: Int, perBlock: Int) -> UInt64 {
    precondition(count >= 0, "negative count \(count)")
    let start = counter
    counter &+= UInt64((count + perBlock - 1) / perBlock)
    return start
  }

  // MARK: Draws

  /// `count` floats uniform in [0, 1): the high 24 bits of each 32-bit word times 2⁻²⁴.
  public mutating func uniform(count: Int) -> [Float] { draws(count, .uniform(low: 0, span: 1)) }

  /// `count` standard normal floats by Box–Muller, both outputs of each pair used.
  ///
  /// Words `(a, b)` of a block give `u1 = (a >> 8 + 1) / 2²⁴` in (0, 1] and `u2 = (b >> 8) / 2²⁴`;
  /// the pair is `r cos θ, r sin θ` with `r = sqrt(-2 ln u1)`, `θ = 2π u2`. Words 0–1 give
  /// elements 4k, 4k+1 and words 2–3 give 4k+2, 4k+3 of block k.
  public mutating func normal(count: Int) -> [Float] { draws(count, .normal(mean: 0, std: 1)) }

  /// `count` floats drawn as `draw` says, four per block of the stream.
  mutating func draws(_ count: Int, _ draw: RandomKernels.Draw) -> [Float] {
    let start = take(count, perBlock: 4)
    let key = key
    return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      if count > 0 { RandomKernels.fill(buffer.baseAddress!, count: count, key: key, start: start, draw) }
      initialized = count
    }
  }

  /// `count` integers in `range` (which must not be empty), by 64-bit multiply-shift:
  /// `lower + (x · n) >> 64` for 64 random bits `x` and `n = range.count`; the bias is below
  /// `n / 2⁶⁴`. Words `(0, 1)` and `(2, 3)` of a block give one element each (low word first).
  public mutating func integers(count: Int, in range: Range<Int>) -> [Int] {
    precondition(!range.isEmpty, "integers(count:in:) needs a non-empty range, got \(range)")
    let start = take(count, perBlock: 2)
    let key = key
    let lower = range.lowerBound
    let n = UInt64(UInt(bitPattern: range.upperBound &- range.lowerBound))
    return [Int](unsafeUninitializedCapacity: count) { buffer, initialized in
      if count > 0 {
        let out = buffer.baseAddress!
        RandomKernels.forEachChunk(blocks: (count + 1) / 2, cost: 8) { blocks in
          RandomKernels.integers(out, count: count, key: key, start: start, lower: lower, n: n, blocks: blocks)
        }
      }
      initialized = count
    }
  }
}

/// The fill loops behind ``RandomGenerator``; each handles a range of blocks so that any
/// split of the blocks among threads writes the same elements.
@usableFromInline
enum RandomKernels {
  /// Runs `body` over `0..<blocks` split into chunks (in parallel when large enough).
  @inlinable
  static func forEachChunk(blocks: Int, cost: Int, _ body: (Range<Int>) -> Void) {
    parallelFor(blocks, cost: cost, body)
  }

  @inlinable @inline(__always)
  static func unit24(_ word: UInt32) -> Float { Float(word >> 8) * 0x1p-24 }

  /// What the four values of a Philox block are: `low + span·u` for uniform draws `u`, or
  /// `mean + std·z` for normal draws `z` (two Box–Muller pairs).
  @usableFromInline
  enum Draw {
    case uniform(low: Float, span: Float)
    case normal(mean: Float, std: Float)

    /// The work of a block, for the split across cores.
    @inlinable var cost: Int { if case .uniform = self { 8 } else { 32 } }

    @inlinable @inline(__always)
    func values(_ w: (UInt32, UInt32, UInt32, UInt32)) -> (Float, Float, Float, Float) {
      switch self {
      case .uniform(let low, let span):
        return (low + span * unit24(w.0), low + span * unit24(w.1), low + span * unit24(w.2), low + span * unit24(w.3))
      case .normal(let mean, let std):
        let (z0, z1) = boxMuller(w.0, w.1)
        let (z2, z3) = boxMuller(w.2, w.3)
        return (mean + std * z0, mean + std * z1, mean + std * z2, mean + std * z3)
      }
    }
  }

  /// Fills `out[0 ..< count]` four elements per Philox block (block `b` from `start` gives
  /// elements `4b ..< 4b + 4`, those below `count`) as `draw` says, over every block, split
  /// across cores.
  @inlinable
  static func fill(_ out: UnsafeMutablePointer<Float>, count: Int, key: (UInt32, UInt32), start: UInt64, _ draw: Draw) {
    forEachChunk(blocks: (count + 3) / 4, cost: draw.cost) { blocks in
      fill(out, count: count, key: key, start: start, blocks: blocks, draw)
    }
  }

  /// ``fill(_:count:key:start:_:)`` over `blocks` alone, on this thread.
  @inlinable
  static func fill(
    _ out: UnsafeMutablePointer<Float>, count: Int, key: (UInt32, UInt32), start: UInt64, blocks: Range<Int>,
    _ draw: Draw
  ) {
    for b in blocks {
      let v = draw.values(Philox.block(start &+ UInt64(b), key: key))
      let i = 4 * b
      if i + 4 <= count {
        (out[i], out[i + 1], out[i + 2], out[i + 3]) = v
      } else {
        let rest = [v.0, v.1, v.2, v.3]
        for j in 0..<(count - i) { out[i + j] = rest[j] }
      }
    }
  }

  /// The Box–Muller pair for words `(a, b)`.
  @inlinable @inline(__always)
  static func boxMuller(_ a: UInt32, _ b: UInt32) -> (Float, Float) {
    let u1 = Float((a >> 8) + 1) * 0x1p-24
    let theta = 2 * Float.pi * unit24(b)
    let r = (-2 * logf(u1)).squareRoot()
    return (r * cosf(theta), r * sinf(theta))
  }

  /// Fills elements `2·blocks.lowerBound ..< min(count, 2·blocks.upperBound)` with integers
  /// `lower + (x · n) >> 64`.
  @inlinable
  static func integers(
    _ out: UnsafeMutablePointer<Int>, count: Int, key: (UInt32, UInt32), start: UInt64, lower: Int, n: UInt64,
    blocks: Range<Int>
  ) {
    for b in blocks {
      let w = Philox.block(start &+ UInt64(b), key: key)
      let i = 2 * b
      let x0 = UInt64(w.1) << 32 | UInt64(w.0)
      out[i] = lower &+ Int(truncatingIfNeeded: n.multipliedFullWidth(by: x0).high)
      if i + 1 < count {
        let x1 = UInt64(w.3) << 32 | UInt64(w.2)
        out[i + 1] = lower &+ Int(truncatingIfNeeded: n.multipliedFullWidth(by: x1).high)
      }
    }
  }
}

// MARK: - Random tensors

extension Tensor {
  /// A tensor of `shape` with elements `low + (high - low)·u`, `u` uniform in [0, 1) as in
  /// ``RandomGenerator/uniform(count:)`` (same stream, same counter advance).
  public static func uniform(
    _ shape: [Int], low: Float = 0, high: Float = 1, using generator: inout RandomGenerator
  ) -> Tensor {
    random(shape, .uniform(low: low, span: high - low), using: &generator)
  }

  /// A tensor of `shape` with elements `mean + std·z`, `z` standard normal as in
  /// ``RandomGenerator/normal(count:)`` (same stream, same counter advance).
  public static func normal(
    _ shape: [Int], mean: Float = 0, std: Float = 1, using generator: inout RandomGenerator
  ) -> Tensor {
    random(shape, .normal(mean: mean, std: std), using: &generator)
  }

  /// A tensor of `shape` drawn from `generator`'s stream as `draw` says, four values per block.
  static func random(_ shape: [Int], _ draw: RandomKernels.Draw, using generator: inout RandomGenerator) -> Tensor {
    let count = shape.reduce(1, *)
    let start = generator.take(count, perBlock: 4)
    let key = generator.key
    return Tensor(shape: shape) { buffer in
      if count > 0 { RandomKernels.fill(buffer.baseAddress!, count: count, key: key, start: start, draw) }
    }
  }

  /// A tensor of `shape` holding integers drawn from `range` as by
  /// ``RandomGenerator/integers(count:in:)`` (e.g. diffusion timesteps). The bounds must lie
  /// within ±2²⁴ so that every value is exact in `Float`.
  public static func randomIntegers(
    _ shape: [Int], in range: Range<Int>, using generator: inout RandomGenerator
  ) -> Tensor {
    precondition(
      range.lowerBound >= -(1 << 24) && range.upperBound <= (1 << 24) + 1,
      "randomIntegers range \(range) is not exact in Float")
    let values = generator.integers(count: shape.reduce(1, *), in: range)
    return Tensor(shape: shape) { buffer in
      for i in 0..<buffer.count { buffer[i] = Float(values[i]) }
    }
  }
}

// MARK: - One stream per row

extension Tensor {
  /// A tensor `[streams.count] + rowShape` whose row `i` is drawn from `streams[i]` exactly as
  /// `Tensor.normal(rowShape, using: &streams[i])` would draw it (same values, same counter
  /// advance). Rows keyed by their own stream do not depend on how a batch is split, which is
  /// what makes N data-parallel ranks draw what one process with the whole batch draws.
  public static func normal(rowShape: [Int], streams: inout [RandomGenerator]) -> Tensor {
    let rowCount = rowShape.reduce(1, *)
    let starts = streams.indices.map { streams[$0].take(rowCount, perBlock: 4) }
    let keys = streams.map(\.key)
    return Tensor(shape: [streams.count] + rowShape) { buffer in
      guard rowCount > 0 else { return }
      let out = buffer.baseAddress!
      parallelFor(keys.count, cost: 8 * rowCount) { rows in
        for row in rows {
          RandomKernels.fill(
            out + row * rowCount, count: rowCount, key: keys[row], start: starts[row], blocks: 0..<((rowCount + 3) / 4),
            .normal(mean: 0, std: 1))
        }
      }
    }
  }
}
