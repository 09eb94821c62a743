import Foundation
import DistillTestSupport
import Testing

/// `mpirun` on PATH, or nil: the 2-rank test is skipped (with this reason) on machines
/// without Open MPI; `scripts/setup.sh` installs it, so CI runs it.
private let mpirun: String? = {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
  return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

/// The `mpi-selftest` built beside this test bundle.
private let selftest: String = {
  let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
  var directory = runner.deletingLastPathComponent()
  // On Apple platforms the runner sits inside `X.xctest/Contents/MacOS`.
  while directory.path.contains(".xctest") { directory.deleteLastPathComponent() }
  return directory.appendingPathComponent("mpi-selftest").path
}()

private struct Outcome {
  let status: Int32
  let output: String
}

private func launch(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Outcome {
  var variables = ProcessInfo.processInfo.environment
  // Whatever launched the tests must not make the child think it is a rank of that job.
  for name in variables.keys where name.hasPrefix("OMPI_") || name.hasPrefix("PMI") { variables[name] = nil }
  let result = try runChildProcess(
    URL(fileURLWithPath: executable), arguments, environment: variables.merging(environment) { $1 }, mergingErrors: true)
  return Outcome(status: result.status, output: result.output)
}

private let checks = ["allreduce-mean", "allreduce-mean-tensors", "allreduce-sum-doubles", "broadcast-bytes",
                      "broadcast-parameters", "data-parallel-sgd", "ranks-identical"]

private func expectAllPassed(_ outcome: Outcome, ranks: Int) {
  #expect(outcome.status == 0, "exit status \(outcome.status):\n\(outcome.output)")
  #expect(!outcome.output.contains("FAIL"), "\(outcome.output)")
  for rank in 0..<ranks {
    for check in checks {
      #expect(outcome.output.contains("rank \(rank) PASS \(check):"), "rank \(rank) did not pass \(check):\n\(outcome.output)")
    }
  }
}

/// Runs the `mpi-selftest` executable in real processes (slow: seconds, not milliseconds).
@Suite(.serialized) struct MPISelfTestTests {
  @Test(
    .enabled(if: mpirun != nil, "mpirun not found on PATH: install openmpi-bin (bash scripts/setup.sh) to run 2 ranks"),
    .timeLimit(.minutes(2)))
  func twoRanksAverageBroadcastAndTrainLikeOneProcess() throws {
    try #require(FileManager.default.isExecutableFile(atPath: selftest), "\(selftest) is missing: build the package first")
    let outcome = try launch(
      mpirun!, ["--allow-run-as-root", "--oversubscribe", "-np", "2", selftest],
      // Loopback and shared memory only: no network probing; no single-copy (ptrace) in containers.
      environment: ["OMPI_MCA_btl": "self,vader", "OMPI_MCA_oob_tcp_if_include": "lo",
                    "OMPI_MCA_btl_vader_single_copy_mechanism": "none"])
    expectAllPassed(outcome, ranks: 2)
    #expect(outcome.output.contains("backend: Open MPI"), "\(outcome.output)")
    print(outcome.output)
  }

  @Test func oneProcessRunsWithoutMPI() throws {
    try #require(FileManager.default.isExecutableFile(atPath: selftest), "\(selftest) is missing: build the package first")
    let outcome = try launch(selftest, [])
    expectAllPassed(outcome, ranks: 1)
    #expect(outcome.output.contains("backend: single process"))
  }

  @Test func aLaunchWithoutLoadableMPIRefusesClearly() throws {
    try #require(FileManager.default.isExecutableFile(atPath: selftest), "\(selftest) is missing: build the package first")
    // What a rank sees when mpirun starts it on a machine whose libmpi is missing.
    let outcome = try launch(
      selftest, [],
      environment: ["OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "DISTILL_LIBMPI": "/nonexistent/libmpi.so.40"])
    #expect(outcome.status == 2, "\(outcome.output)")
    #expect(outcome.output.contains("launched as one of 2 ranks (OMPI_COMM_WORLD_SIZE=2) but Open MPI could not be loaded"), "\(outcome.output)")
    #expect(!outcome.output.contains("PASS"))
  }
}
