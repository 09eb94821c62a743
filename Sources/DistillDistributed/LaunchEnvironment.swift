/// The job size and rank that a parallel launcher announced through environment variables.
///
/// Launchers set these before the program starts, so they tell whether the process is one
/// of several without any MPI library:
///
/// | launcher | size | rank |
/// | --- | --- | --- |
/// | Open MPI `mpirun` / `mpiexec` | `OMPI_COMM_WORLD_SIZE` | `OMPI_COMM_WORLD_RANK` |
/// | MPICH Hydra, Intel MPI, `srun --mpi=pmi2` | `PMI_SIZE` | `PMI_RANK` |
/// | `srun --mpi=pmix` | `SLURM_STEP_NUM_TASKS` (with `PMIX_RANK` set) | `PMIX_RANK` |
///
/// Slurm's own variables alone are not a launch: an `sbatch` script has `SLURM_NTASKS` set
/// while it runs as one process.
public struct LaunchEnvironment: Equatable, Sendable {
  /// The variable that gave the size, as `NAME=value`, for messages.
  public let launcher: String
  public let size: Int
  public let rank: Int

  /// The launch described by `variable`, or `nil` when no launcher variable is set.
  ///
  /// - Parameter variable: reads one environment variable (the process's by default).
  /// - Throws: ``DistributedError/invalidLaunchVariable(name:value:)`` for a value that is not
  ///   a count, or a rank outside `0..<size`.
  public static func detect(_ variable: (String) -> String? = environmentVariable) throws -> LaunchEnvironment? {
    let pairs: [(size: String, rank: String, requires: String?)] = [
      ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", nil),
      ("PMI_SIZE", "PMI_RANK", nil),
      ("SLURM_STEP_NUM_TASKS", "PMIX_RANK", "PMIX_RANK"),
    ]
    for pair in pairs {
      guard let sizeText = variable(pair.size) else { continue }
      if let required = pair.requires, variable(required) == nil { continue }
      guard let size = Int(sizeText), size >= 1 else {
        throw DistributedError.invalidLaunchVariable(name: pair.size, value: sizeText)
      }
      let rankText = variable(pair.rank) ?? "0"
      guard let rank = Int(rankText), (0..<size).contains(rank) else {
        throw DistributedError.invalidLaunchVariable(name: pair.rank, value: rankText)
      }
      return LaunchEnvironment(launcher: "\(pair.size)=\(sizeText)", size: size, rank: rank)
    }
    return nil
  }

  /// The process environment's value of `name`.
  public static func environmentVariable(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
  }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
