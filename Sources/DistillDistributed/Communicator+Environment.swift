/// The communicator for how this process was started.
///
/// - Under a launcher (``LaunchEnvironment``) with more than one rank: Open MPI, loaded at
///   run time, checked to agree with the launcher on size and rank.
/// - Otherwise (no launcher, or `mpirun -np 1`): a ``SingleProcessCommunicator``, without
///   touching MPI.
///
/// ```swift
/// let communicator = try communicatorFromEnvironment()
/// if communicator.isMain { print("training on \(communicator.size) ranks: \(communicator.backend)") }
/// ```
///
/// - Parameters:
///   - variable: reads an environment variable (the process's by default).
///   - libraries: the libraries to try in order; by default `DISTILL_LIBMPI` alone when it is
///     set, else ``defaultMPILibraries``.
/// - Throws: ``DistributedError/mpiUnavailable(launcher:size:attempts:)`` when launched as
///   several ranks without a loadable Open MPI (a build or machine without MPI must not train
///   N independent copies); ``DistributedError/launchMismatch(launcher:expected:found:)``
///   when MPI's world disagrees with the launcher; a launcher variable that is not a number.
public func communicatorFromEnvironment(
  _ variable: (String) -> String? = LaunchEnvironment.environmentVariable, libraries: [String]? = nil
) throws -> any Communicator {
  guard let launch = try LaunchEnvironment.detect(variable), launch.size > 1 else {
    return SingleProcessCommunicator()
  }
  let candidates = libraries ?? variable("DISTILL_LIBMPI").map { [$0] } ?? defaultMPILibraries
  let communicator = try MPICommunicator(libraries: candidates, launch: launch)
  if communicator.size != launch.size || communicator.rank != launch.rank {
    throw DistributedError.launchMismatch(
      launcher: launch.launcher, expected: "rank \(launch.rank) of \(launch.size)",
      found: "MPI_COMM_WORLD rank \(communicator.rank) of \(communicator.size) from \(communicator.backend)")
  }
  return communicator
}

/// The Open MPI libraries tried by ``communicatorFromEnvironment(_:libraries:)``, in order:
/// the versioned name first (installed by the runtime package, `libopenmpi3` on Debian),
/// then the development link.
public let defaultMPILibraries: [String] = {
  #if os(macOS)
    return ["libmpi.40.dylib", "libmpi.dylib", "/opt/homebrew/lib/libmpi.dylib", "/usr/local/lib/libmpi.dylib"]
  #else
    return ["libmpi.so.40", "libmpi.so"]
  #endif
}()
