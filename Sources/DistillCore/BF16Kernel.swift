import CKernels
import Foundation

/// How `bf16` products and convolutions multiply (``ComputePrecision/bf16``): the operands are
/// rounded to bfloat16 and the products accumulated in float32 either way.
///
/// - `dot`: AVX512-BF16's `vdpbf16ps` on pairs of bfloat16, twice the multiply-adds of a float32
///   FMA per instruction.
/// - `rounded`: the float32 product kernel on operands rounded to bfloat16 and kept as float32.
///   A product of two bfloat16 values is exact in float32, so the sums are `dot`'s in another
///   order; the results differ from `dot`'s only by that order's rounding.
///
/// ``fastest`` is measured once per process (a few microseconds of each instruction): CPUs that
/// give `vdpbf16ps` more multiply-adds per second than FMA get `dot` (expected on AMD Zen 4, where bf16
/// training steps took 0.66x of float32's; not yet run there); those that issue it at a quarter of the FMA rate, half the
/// multiply-adds per cycle, get `rounded` (Intel Emerald Rapids without AMX, measured 89 against
/// 178 GFLOP/s on one core). `DISTILL_BF16_KERNEL=dot` or `rounded` in the environment overrides it (other values are
/// ignored).
public enum BF16Kernel: String, Sendable, CaseIterable {
  case dot, rounded

  /// The faster kernel on this CPU, or the environment's `DISTILL_BF16_KERNEL`.
  public static let fastest: BF16Kernel = {
    if let name = ProcessInfo.processInfo.environment["DISTILL_BF16_KERNEL"], let kernel = BF16Kernel(rawValue: name) {
      return kernel
    }
    return distill_bf16_fastest_kernel() == Int32(DISTILL_BF16_ROUNDED) ? .rounded : .dot
  }()

  /// The kernel of the enclosing `$current.withValue` scope (tests run both), ``fastest``
  /// outside any.
  @TaskLocal public static var current: BF16Kernel = fastest

  /// The flag the CKernels products and convolutions take for `bf16`.
  var flag: Int32 { Int32(self == .dot ? DISTILL_BF16_DOT : DISTILL_BF16_ROUNDED) }
}
