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
///
/// A storage of ``isBFloat16`` holds `count` bfloat16 values (2 bytes each) instead: a frozen
/// network's product weights (``Tensor/bfloat16Rounded()``), which only the product and
/// convolution ops read (through ``halves``); reading it as floats is a programmer error.
@usableFromInline
final class TensorStorage: @unchecked Sendable {
  /// The elements; for a bfloat16 storage, the start of its buffer, never read as floats.
  @usableFromInline let pointer: UnsafeMutablePointer<Float>
  @usableFromInline let count: Int
  /// Whether the buffer holds bfloat16 values rather than floats.
  @usableFromInline let isBFloat16: Bool

  /// Allocates `count` uninitialised floats, or with `bfloat16` uninitialised bfloat16 values.
  @usableFromInline
  init(uninitializedCount count: Int, bfloat16: Bool = false) {
    precondition(count >= 0, "negative element count \(count)")
    self.count = count
    isBFloat16 = bfloat16
    let bytes = Self.bytes(count, bfloat16: bfloat16)
    let raw = distill_buffer_alloc(bytes)
    precondition(raw != nil, "out of memory allocating \(bytes) bytes")
    pointer = raw!.bindMemory(to: Float.self, capacity: bytes / MemoryLayout<Float>.stride)
  }

  /// The buffer size of `count` elements (at least one float's worth).
  private static func bytes(_ count: Int, bfloat16: Bool) -> Int {
    bfloat16 ? max(count * 2, 4).roundedUp(toMultipleOf: 4) : max(count, 1) * MemoryLayout<Float>.stride
  }

  /// The bytes the elements take: 4 per float, 2 per bfloat16 value.
  var elementBytes: Int { count * (isBFloat16 ? 2 : MemoryLayout<Float>.stride) }

  /// The bfloat16 values of a bfloat16 storage.
  var halves: UnsafeMutablePointer<UInt16> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: UInt16.self)
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
    let other = TensorStorage(uninitializedCount: count, bfloat16: isBFloat16)
    memcpy(other.pointer, pointer, elementBytes)
    return other
  }

  deinit { distill_buffer_free(pointer, Self.bytes(count, bfloat16: isBFloat16)) }
}

extension Int {
  fileprivate func roundedUp(toMultipleOf step: Int) -> Int { (self + step - 1) / step * step }
}
