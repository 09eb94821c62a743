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
  @usableFromInline static let activeProcessorCount: Int = {
    #if canImport(Glibc)
      return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
      return 1
    #endif
  }()
}

#if canImport(Glibc)
  import Glibc
#endif
