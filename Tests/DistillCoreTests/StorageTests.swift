import Dispatch
import Testing

@testable import DistillCore

@Suite struct StorageTests {
  /// Buffers are recycled by size (pool.c): from several threads at once, tensors of sizes on
  /// both sides of the directly-mapped threshold keep their own contents.
  @Test func recycledBuffersKeepTheirContentsAcrossThreads() {
    let sizes = [1, 15, 16, 1000, 32 * 1024, 32 * 1024 + 16, 300_000]
    let threads = 4
    let intact = UnsafeMutablePointer<Bool>.allocate(capacity: threads)
    defer { intact.deallocate() }
    let slots = SendablePointer(intact)
    DispatchQueue.concurrentPerform(iterations: threads) { thread in
      var ok = true
      for round in 0..<50 {
        let value = Float(thread * 1000 + round)
        let tensors = sizes.map { Tensor.full([$0], value) }
        ok = ok && tensors.allSatisfy { $0.scalars.allSatisfy { $0 == value } }
      }
      slots.base[thread] = ok
    }
    #expect((0..<threads).allSatisfy { intact[$0] })
  }
}
