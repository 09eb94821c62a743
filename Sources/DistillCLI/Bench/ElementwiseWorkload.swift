#if canImport(Glibc)
  import Glibc
#endif
import DistillCore

/// Elementwise ops on a million floats against a plain copy of the same bytes into a fresh
/// buffer (what producing any new 4 MB tensor must at least cost). Ratios near 1 mean the op
/// runs at memory speed; a binary op reads twice the bytes of the copy.
enum ElementwiseWorkload {
  static func figures() -> [String: Double] {
    var rng = RandomGenerator(seed: 0)
    let count = 1 << 20
    let a = Tensor.normal([count], mean: 0, std: 1, using: &rng)
    let b = Tensor.normal([count], mean: 0, std: 1, using: &rng)
    let copy = medianSeconds(warm: 5, reps: 51) {
      a.withUnsafeBufferPointer { source in
        let target = UnsafeMutablePointer<Float>.allocate(capacity: count)
        memcpy(target, source.baseAddress!, count * MemoryLayout<Float>.stride)
        withExtendedLifetime(target) { target.deallocate() }
      }
    }
    let ops: [(String, () -> Tensor)] = [
      ("add", { a + b }), ("mul_scalar", { a * 2 }), ("relu", { a.relu() }), ("silu", { a.silu() }),
      ("exp", { a.exp() }),
    ]
    var figures = ["elementwise_copy_1m_s": copy]
    for (name, op) in ops {
      let seconds = medianSeconds(warm: 5, reps: 51) { _ = op() }
      figures["elementwise_\(name)_1m_s"] = seconds
      figures["elementwise_\(name)_over_copy"] = seconds / copy
    }
    return figures
  }
}
