import Dispatch

/// A pointer wrapper that may cross into `concurrentPerform`; each iteration must touch a
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
  let chunks = min(threads, count)
  withoutActuallyEscaping(body) { body in
    let box = UncheckedSendableBox(body)
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
      let lo = count * chunk / chunks
      let hi = count * (chunk + 1) / chunks
      box.value(lo..<hi)
    }
  }
}

@usableFromInline
struct UncheckedSendableBox<T>: @unchecked Sendable {
  @usableFromInline let value: T
  @usableFromInline init(_ value: T) { self.value = value }
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
  /// says otherwise.
  public static func applyToBLAS() {
    #if canImport(CBLAS)
      let environment = ProcessInfo.processInfo.environment
      if environment["OPENBLAS_NUM_THREADS"] == nil && environment["OMP_NUM_THREADS"] == nil {
        openblas_set_num_threads(Int32(count))
      }
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
