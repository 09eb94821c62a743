import Testing

@testable import DistillDistributed

@Suite struct BucketPlanTests {
  @Test func packsInReverseOrderUpToTheCap() {
    // 16-byte buckets hold 4 floats.
    let plan = BucketPlan(counts: [2, 1, 3, 1, 1], bucketBytes: 16)
    #expect(plan.buckets.map { $0.slots.map(\.index) } == [[4, 3], [2, 1], [0]])
    #expect(plan.buckets.map(\.count) == [2, 4, 2])
    #expect(plan.buckets[1].slots.map(\.offset) == [0, 3])
    #expect(plan.largestBucket == 4)
  }

  @Test func aBufferLargerThanABucketGetsItsOwn() {
    let plan = BucketPlan(counts: [1, 10, 1], bucketBytes: 8)
    #expect(plan.buckets.map { $0.slots.map(\.index) } == [[2], [1], [0]])
    #expect(plan.buckets.map(\.count) == [1, 10, 1])
  }

  @Test func coversEveryFloatOnceWithContiguousSlots() {
    let counts = [64, 3, 4096, 1, 0, 777, 12, 12, 100_000, 5]
    for bytes in [4, 100, 4096, 1 << 20, BucketPlan.defaultBucketBytes] {
      let plan = BucketPlan(counts: counts, bucketBytes: bytes)
      #expect(plan.buckets.flatMap { $0.slots.map(\.index) }.sorted() == Array(counts.indices))
      for bucket in plan.buckets {
        var offset = 0
        for slot in bucket.slots {
          #expect(slot.offset == offset && slot.count == counts[slot.index])
          offset += slot.count
        }
        #expect(bucket.count == offset)
        #expect(bucket.count * 4 <= bytes || bucket.slots.count == 1, "bucket over the cap with \(bucket.slots.count) buffers")
      }
    }
  }

  @Test func oneBucketByDefaultForSmallModels() {
    let plan = BucketPlan(counts: [1000, 2000, 3000])
    #expect(plan.buckets.count == 1 && plan.largestBucket == 6000)
    #expect(BucketPlan(counts: []).buckets.isEmpty)
  }
}
