/// How a list of float buffers is packed into contiguous buckets for all-reduce.
///
/// Buffers are taken in reverse order (for parameters: reverse registration order, roughly
/// the order backward produces their gradients, as torch DDP does) and appended to the
/// current bucket until adding the next one would pass `bucketBytes`; a buffer larger than a
/// bucket gets a bucket of its own and is never split. The plan depends on the counts alone,
/// so ranks holding the same shapes build the same plan.
public struct BucketPlan: Equatable, Sendable {
  /// torch DDP's `bucket_cap_mb` default: 25 MiB.
  public static let defaultBucketBytes = 25 << 20

  /// Where buffer `index` lies in its bucket: floats `offset..<offset + count`.
  public struct Slot: Equatable, Sendable {
    public let index: Int
    public let offset: Int
    public let count: Int
  }

  /// Buffers reduced together in one call; `count` floats in all.
  public struct Bucket: Equatable, Sendable {
    public let slots: [Slot]
    public let count: Int
  }

  public let buckets: [Bucket]

  /// The float count of the largest bucket: the size of a staging buffer that fits any.
  public var largestBucket: Int { buckets.map(\.count).max() ?? 0 }

  /// Packs buffers of `counts` floats into buckets of at most `bucketBytes` bytes.
  public init(counts: [Int], bucketBytes: Int = BucketPlan.defaultBucketBytes) {
    precondition(bucketBytes > 0, "bucketBytes must be positive, got \(bucketBytes)")
    let capacity = max(1, bucketBytes / MemoryLayout<Float>.stride)
    var buckets: [Bucket] = []
    var slots: [Slot] = []
    var filled = 0
    for index in counts.indices.reversed() {
      let count = counts[index]
      precondition(count >= 0, "negative count \(count) at \(index)")
      if filled > 0 && filled + count > capacity {
        buckets.append(Bucket(slots: slots, count: filled))
        slots = []
        filled = 0
      }
      slots.append(Slot(index: index, offset: filled, count: count))
      filled += count
    }
    if !slots.isEmpty { buckets.append(Bucket(slots: slots, count: filled)) }
    self.buckets = buckets
  }
}
