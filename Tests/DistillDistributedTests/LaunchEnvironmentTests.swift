import Testing

@testable import DistillDistributed

private func lookup(_ variables: [String: String]) -> (String) -> String? { { variables[$0] } }

@Suite struct LaunchEnvironmentTests {
  @Test func readsEachLauncher() throws {
    #expect(try LaunchEnvironment.detect(lookup([:])) == nil)
    #expect(
      try LaunchEnvironment.detect(lookup(["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3"]))
        == LaunchEnvironment(launcher: "OMPI_COMM_WORLD_SIZE=4", size: 4, rank: 3))
    #expect(try LaunchEnvironment.detect(lookup(["PMI_SIZE": "2", "PMI_RANK": "1"]))?.rank == 1)
    #expect(
      try LaunchEnvironment.detect(lookup(["SLURM_STEP_NUM_TASKS": "8", "PMIX_RANK": "5"]))
        == LaunchEnvironment(launcher: "SLURM_STEP_NUM_TASKS=8", size: 8, rank: 5))
  }

  @Test func anSbatchScriptIsNotALaunch() throws {
    #expect(try LaunchEnvironment.detect(lookup(["SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "8", "SLURM_PROCID": "0"])) == nil)
  }

  @Test func rejectsMalformedValues() {
    #expect(throws: DistributedError.invalidLaunchVariable(name: "PMI_SIZE", value: "two")) {
      try LaunchEnvironment.detect(lookup(["PMI_SIZE": "two"]))
    }
    #expect(throws: DistributedError.invalidLaunchVariable(name: "OMPI_COMM_WORLD_RANK", value: "2")) {
      try LaunchEnvironment.detect(lookup(["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "2"]))
    }
  }

  @Test func oneRankOrNoLauncherIsSingleProcess() throws {
    #expect(try communicatorFromEnvironment(lookup([:])) is SingleProcessCommunicator)
    // `mpirun -np 1` needs no MPI at all, even where none could load.
    let one = try communicatorFromEnvironment(lookup(["OMPI_COMM_WORLD_SIZE": "1"]), libraries: ["/nonexistent/libmpi.so"])
    #expect(one is SingleProcessCommunicator)
  }

  @Test func severalRanksWithoutMPIRefuseClearly() throws {
    let environment = lookup(["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"])
    do {
      _ = try communicatorFromEnvironment(environment, libraries: ["/nonexistent/libmpi.so.40", "libc.so.6"])
      Issue.record("expected an error")
    } catch let error as DistributedError {
      guard case .mpiUnavailable(let launcher, let size, let attempts) = error else {
        Issue.record("unexpected \(error)")
        return
      }
      #expect(launcher == "OMPI_COMM_WORLD_SIZE=2" && size == 2 && attempts.count == 2)
      #expect(attempts[0].contains("/nonexistent/libmpi.so.40"))
      // A library that loads but is not Open MPI is named as such.
      #expect(attempts[1].contains("symbol MPI_Initialized not found"), "\(attempts[1])")
      #expect(error.description.contains("Open MPI could not be loaded"))
    }
  }

  @Test func distillLibmpiOverridesTheSearch() {
    let environment = lookup(["PMI_SIZE": "3", "PMI_RANK": "0", "DISTILL_LIBMPI": "/opt/none/libmpi.so"])
    #expect {
      try communicatorFromEnvironment(environment)
    } throws: { error in
      guard case .mpiUnavailable(_, 3, let attempts) = error as? DistributedError else { return false }
      return attempts.count == 1 && attempts[0].hasPrefix("/opt/none/libmpi.so")
    }
  }
}
