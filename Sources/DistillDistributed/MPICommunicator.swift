import CMPIShim

/// A communicator over Open MPI's `MPI_COMM_WORLD`, loaded at run time through `CMPIShim`.
///
/// There is one MPI world per process: create it through ``communicatorFromEnvironment(_:libraries:)``.
/// Calls are serialised by a lock in the shim (MPI runs at `MPI_THREAD_SERIALIZED`), so any
/// thread may call, one at a time.
public final class MPICommunicator: Communicator {
  public let rank: Int
  public let size: Int
  public let backend: String

  /// Loads the first library in `libraries` that is Open MPI and initialises MPI.
  ///
  /// - Throws: ``DistributedError/mpiUnavailable(launcher:size:attempts:)`` when none loads,
  ///   ``DistributedError/mpiCall(function:code:message:)`` when initialisation fails.
  init(libraries: [String], launch: LaunchEnvironment) throws {
    var attempts: [String] = []
    var loaded: String?
    for library in libraries {
      var message = [CChar](repeating: 0, count: 1024)
      if distill_mpi_load(library, &message, message.count) == 0 {
        loaded = library
        break
      }
      let reason = text(message)
      attempts.append(reason.hasPrefix(library) ? reason : "\(library): \(reason)")
    }
    guard let loaded else {
      throw DistributedError.mpiUnavailable(launcher: launch.launcher, size: launch.size, attempts: attempts)
    }
    var rank: Int32 = 0
    var size: Int32 = 0
    var message = [CChar](repeating: 0, count: 1024)
    let code = distill_mpi_initialize(&rank, &size, &message, message.count)
    if code != 0 {
      let detail = text(message)
      throw DistributedError.mpiCall(
        function: "MPI_Init_thread", code: code, message: detail.isEmpty ? Self.errorString(code) : detail)
    }
    self.rank = Int(rank)
    self.size = Int(size)
    var version = [CChar](repeating: 0, count: 512)
    distill_mpi_library_version(&version, version.count)
    backend = "\(text(version)) (\(loaded)), rank \(rank) of \(size)"
  }

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return }
    try check("MPI_Allreduce", distill_mpi_allreduce_sum_float(base, buffer.count))
  }

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
    guard let base = buffer.baseAddress, buffer.count > 0 else { return }
    try check("MPI_Allreduce", distill_mpi_allreduce_sum_double(base, buffer.count))
  }

  public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) throws {
    precondition((0..<size).contains(root), "broadcast from rank \(root) in a job of \(size)")
    guard let base = buffer.baseAddress, buffer.count > 0 else { return }
    try check("MPI_Bcast", distill_mpi_broadcast_bytes(base, buffer.count, Int32(root)))
  }

  public func barrier() throws { try check("MPI_Barrier", distill_mpi_barrier()) }

  public func finalize() throws { try check("MPI_Finalize", distill_mpi_finalize()) }

  public func abort(exitCode: Int32) -> Never { distill_mpi_abort(exitCode) }

  private func check(_ function: String, _ code: Int32) throws {
    if code != 0 { throw DistributedError.mpiCall(function: function, code: code, message: Self.errorString(code)) }
  }

  private static func errorString(_ code: Int32) -> String {
    var text = [CChar](repeating: 0, count: 512)
    distill_mpi_error_string(code, &text, text.count)
    return DistillDistributed.text(text)
  }
}

/// The text before the first NUL of a buffer a C function filled.
private func text(_ buffer: [CChar]) -> String {
  String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
