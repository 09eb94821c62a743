import CKernels

/// The arithmetic of matrix products and convolutions.
///
/// `fp32`: float32 operands and accumulation. `bf16`: operands rounded to bfloat16 (round to
/// nearest even) while the product kernel packs them, products accumulated in float32, by
/// AVX512-BF16's `vdpbf16ps` or by float32 FMA on the rounded values, whichever this CPU runs
/// faster (``BF16Kernel``; CKernels `gemm_bf16.c`); results, and everything that is not a
/// product or a convolution (norms, softmax, losses, optimizer steps), stay float32, as do the
/// tensors themselves. This is PyTorch's CPU autocast to bfloat16 for the ops it covers.
///
/// The precision is a scope, not a setting: ``withComputePrecision(_:_:)`` binds it for the
/// code it runs (a task-local value, so concurrent tasks and threads never see each other's),
/// and the product and convolution ops read ``current`` on the thread that calls them.
public enum ComputePrecision: String, Sendable, CaseIterable {
  case fp32, bf16

  /// The precision of the enclosing ``withComputePrecision(_:_:)`` scope, `fp32` outside any.
  @TaskLocal public static var current: ComputePrecision = .fp32

  /// Whether `bf16` can run here: Distillery's own product kernel is in use (``GemmKernel``)
  /// and the CPU has AVX512-BF16.
  public static let bf16Supported: Bool = GemmKernel.isOwn && distill_bf16_supported() != 0

  /// Whether this precision can run on this machine.
  public var isSupported: Bool { self == .fp32 || Self.bf16Supported }

  /// The flag the CKernels products take (read on the calling thread, before any hand-off to
  /// worker threads, which do not see the scope).
  var kernelFlag: Int32 { self == .bf16 ? BF16Kernel.current.flag : Int32(DISTILL_FP32) }
}

/// Runs `body` with products and convolutions in `precision` (see ``ComputePrecision``): the
/// forward pass, the backward pass, or a whole training step wrapped in it. Traps when
/// `precision` is not supported on this CPU (``ComputePrecision/isSupported``); callers that
/// take it from a user check that first.
public func withComputePrecision<R>(_ precision: ComputePrecision, _ body: () throws -> R) rethrows
  -> R
{
  precondition(
    precision.isSupported,
    "\(precision.rawValue) products need a CPU with AVX512-BF16 and Distillery's kernel")
  return try ComputePrecision.$current.withValue(precision, operation: body)
}
