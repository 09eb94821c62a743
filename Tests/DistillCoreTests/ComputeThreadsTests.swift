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
}
