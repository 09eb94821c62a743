/// What can go wrong when setting up or using a ``Communicator``.
///
/// A separate type from `DistillError` because the core knows nothing of processes; every
/// case names the variable, library or MPI function involved.
public enum DistributedError: Error, CustomStringConvertible, Equatable {
  /// A launcher variable holds something that is not a rank or size.
  case invalidLaunchVariable(name: String, value: String)
  /// The process was launched as one of `size` ranks but no usable Open MPI library loaded:
  /// `attempts` lists each library tried with the reason it failed.
  case mpiUnavailable(launcher: String, size: Int, attempts: [String])
  /// libmpi loaded but disagrees with the launcher (typically a different MPI than the
  /// `mpirun` that started the job).
  case launchMismatch(launcher: String, expected: String, found: String)
  /// An MPI call returned an error.
  case mpiCall(function: String, code: Int32, message: String)
  /// The ranks hold different parameter lists (names, shapes or order).
  case layoutMismatch(detail: String)

  public var description: String {
    switch self {
    case .invalidLaunchVariable(let name, let value):
      return "\(name): expected a non-negative integer, found \"\(value)\""
    case .mpiUnavailable(let launcher, let size, let attempts):
      return """
        launched as one of \(size) ranks (\(launcher)) but Open MPI could not be loaded, so this \
        process cannot join the others. Install Open MPI (`apt-get install libopenmpi-dev openmpi-bin`, \
        or `bash scripts/setup.sh`) or set DISTILL_LIBMPI to the path of libmpi.so. Tried:
        """ + attempts.map { "\n  - \($0)" }.joined()
    case .launchMismatch(let launcher, let expected, let found):
      return "\(launcher): expected \(expected), found \(found); is libmpi from the same Open MPI as mpirun?"
    case .mpiCall(let function, let code, let message):
      return "\(function) failed with MPI error \(code): \(message)"
    case .layoutMismatch(let detail):
      return "parameter lists differ across ranks: \(detail)"
    }
  }
}
