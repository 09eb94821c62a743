import Synchronization
import Testing

@testable import DistillCore

@Suite struct ComputeThreadsTests {
  @Test func ranksSharingAMachineSplitItsCores() {
    #expect(ComputeThreads.resolve([:], cores: 16) == 16)
    #expect(ComputeThreads.resolve(["OMPI_COMM_WORLD_LOCAL_SIZE": "4"], cores: 16) == 4)
    #expect(ComputeThreads.resolve(["MPI_LOCALNRANKS": "2"], cores: 2) == 1)
    #expect(ComputeThreads.resolve(["OMPI_COMM_WORLD_LOCAL_SIZE": "8"], cores: 2) == 1)
    // An explicit count wins; a bad one is ignored.
    #expect(ComputeThreads.resolve(["DISTILL_NUM_THREADS": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"], cores: 16) == 3)
    #expect(ComputeThreads.resolve(["DISTILL_NUM_THREADS": "zero"], cores: 6) == 6)
  }

  /// Every chunk of every job runs exactly once, within its job: a worker late for one job
  /// once claimed a chunk of the next (the claim word still held the finished job's generation
  /// while the new chunk count was written), running a chunk twice, or a finished job's chunk
  /// on its caller's dead stack frame (a training run's segmentation fault). The old pool
  /// failed this within about a million jobs.
  @Test func chunksRunExactlyOnceAcrossManyJobs() {
    let slots = 48
    let counts = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: slots)
    for i in 0..<slots { (counts + i).initialize(to: Atomic(0)) }
    defer {
      counts.deinitialize(count: slots)
      counts.deallocate()
    }
    var failures = 0
    var seed: UInt32 = 1
    for _ in 0..<2_000_000 {
      seed = seed &* 1_103_515_245 &+ 12345
      let chunks = 2 + Int(seed >> 16) % 40
      for i in 0..<slots { counts[i].store(0, ordering: .relaxed) }
      runChunks(chunks) { i in counts[i].wrappingAdd(1, ordering: .relaxed) }
      for i in 0..<slots where counts[i].load(ordering: .relaxed) != (i < chunks ? 1 : 0) { failures += 1 }
    }
    #expect(failures == 0)
  }
}
