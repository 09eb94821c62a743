import CKernels

/// A pointer wrapper that may cross into a parallel loop; each iteration must touch a
/// disjoint range.
@usableFromInline
struct SendablePointer<Pointee>: @unchecked Sendable {
  @usableFromInline let base: UnsafeMutablePointer<Pointee>
  @usableFromInline init(_ base: UnsafeMutablePointer<Pointee>) { self.base = base }
}

@usableFromInline
struct SendableConstPointer<Pointee>: @unchecked Sendable {
  @usableFromInline let base: UnsafePointer<Pointee>
  @usableFromInline init(_ base: UnsafePointer<Pointee>) { self.base = base }
}

/// Runs `body` over `0..<count` in chunks on all cores when the work is large enough to pay
/// for the hand-off, inline otherwise. `cost` is an estimate of floats touched per index.
@inlinable
func parallelFor(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
  let work = count * cost
  let threads = ProcessInfoCache.activeProcessorCount
  if threads <= 1 || work < 1 << 17 || count < 2 {
    body(0..<count)
    return
  }
  // A few chunks per thread, so that a thread that loses its core holds up only a small part.
  let chunks = min(threads * 4, count)
  runChunks(chunks) { chunk in body(count * chunk / chunks..<count * (chunk + 1) / chunks) }
}

/// Runs `body(i)` for every `i` in `0..<chunks` on the compute threads (CKernels' worker pool,
/// `threads.c`), returning when all are done; each call must write disjoint memory.
///
/// Unlike `DispatchQueue.concurrentPerform`, the calling thread does not wait for a worker
/// that has not started yet: it runs the chunks left over itself.
@usableFromInline
func runChunks(_ chunks: Int, _ body: (Int) -> Void) {
  withoutActuallyEscaping(body) { body in
    var task = body
    withUnsafeMutablePointer(to: &task) { pointer in
      distill_parallel_run(ProcessInfoCache.activeProcessorCount, chunks, { context, chunk in
        context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(chunk)
      }, pointer)
    }
  }
}

@usableFromInline
enum ProcessInfoCache {
  @usableFromInline static let activeProcessorCount: Int = ComputeThreads.count
}

/// How many threads Distillery's loops (and OpenBLAS, after ``applyToBLAS()``) use.
///
/// `DISTILL_NUM_THREADS` when set; otherwise the online cores divided by the ranks of an MPI
/// job on this machine (`OMPI_COMM_WORLD_LOCAL_SIZE`, `MPI_LOCALNRANKS`), so that ranks
/// sharing a machine do not oversubscribe its cores; at least 1.
public enum ComputeThreads {
  public static let count: Int = resolve(ProcessInfo.processInfo.environment, cores: onlineCores)

  static var onlineCores: Int {
    #if canImport(Glibc)
      return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
      return ProcessInfo.processInfo.activeProcessorCount
    #endif
  }

  /// The thread count for `environment` on a machine with `cores` cores.
  static func resolve(_ environment: [String: String], cores: Int) -> Int {
    if let text = environment["DISTILL_NUM_THREADS"], let n = Int(text), n > 0 { return n }
    let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"].lazy.compactMap { environment[$0].flatMap { Int($0) } }.first
    return max(1, cores / max(1, local ?? 1))
  }

  /// Gives OpenBLAS the same count, unless `OPENBLAS_NUM_THREADS` (or `OMP_NUM_THREADS`)
  /// says otherwise; when Distillery's own matrix product is in use (``GemmKernel``), which
  /// leaves OpenBLAS unused, stops OpenBLAS's threads instead.
  ///
  /// OpenBLAS starts its threads when it loads, and they poll (`sched_yield`) for about a
  /// tenth of a second after start-up and after each threaded call; on a 2-core machine an
  /// unused poller competes with the compute threads for the cores.
  public static func applyToBLAS() {
    #if canImport(CBLAS)
      let environment = ProcessInfo.processInfo.environment
      if environment["OPENBLAS_NUM_THREADS"] == nil && environment["OMP_NUM_THREADS"] == nil {
        openblas_set_num_threads(Int32(count))
      }
      if GemmKernel.isOwn { stopBLASThreads() }
    #endif
  }

  /// Calls OpenBLAS's `blas_thread_shutdown_` when the loaded OpenBLAS exports it (it starts
  /// its threads again on its next threaded call).
  static func stopBLASThreads() {
    #if canImport(Glibc)
      guard let process = dlopen(nil, RTLD_NOW), let symbol = dlsym(process, "blas_thread_shutdown_") else { return }
      typealias Shutdown = @convention(c) () -> Int32
      _ = unsafeBitCast(symbol, to: Shutdown.self)()
    #endif
  }
}

#if canImport(CBLAS)
  import CBLAS
#endif
#if canImport(Glibc)
  import Glibc
#endif
import Foundation
