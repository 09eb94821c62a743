import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A 64-byte-aligned buffer of `Float`s shared by tensors, copied on write.
///
/// Buffers come from and go back to a cache of freed buffers by size (`distill_buffer_alloc`
/// in CKernels, pool.c), so that a training loop, which allocates the same sizes every step,
/// reuses memory that is already mapped instead of faulting in new pages.
///
/// Tensors never expose a `TensorStorage`; they reach it through `withUnsafeBufferPointer`
/// and `withUnsafeMutableBufferPointer`, which copy first when the buffer is shared.
@usableFromInline
final class TensorStorage: @unchecked Sendable {
  @usableFromInline let pointer: UnsafeMutablePointer<Float>
  @usableFromInline let count: Int

  /// Allocates `count` uninitialised floats.
  @usableFromInline
  init(uninitializedCount count: Int) {
    precondition(count >= 0, "negative element count \(count)")
    self.count = count
    let bytes = max(count, 1) * MemoryLayout<Float>.stride
    let raw = distill_buffer_alloc(bytes)
    precondition(raw != nil, "out of memory allocating \(bytes) bytes")
    pointer = raw!.bindMemory(to: Float.self, capacity: max(count, 1))
  }

  @usableFromInline
  convenience init(repeating value: Float, count: Int) {
    self.init(uninitializedCount: count)
    if value == 0 {
      memset(pointer, 0, count * MemoryLayout<Float>.stride)
    } else {
      pointer.initialize(repeating: value, count: count)
    }
  }

  @usableFromInline
  func copy() -> TensorStorage {
    let other = TensorStorage(uninitializedCount: count)
    other.pointer.update(from: pointer, count: count)
    return other
  }

  deinit { distill_buffer_free(pointer, max(count, 1) * MemoryLayout<Float>.stride) }
}
