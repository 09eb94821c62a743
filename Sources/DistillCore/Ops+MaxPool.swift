import CKernels

// Max pooling over the last two dimensions of NCHW tensors, as PyTorch's `F.max_pool2d`
// (no padding, no dilation), with its `ceil_mode`. The forward pass keeps the index of each
// window's maximum so that the backward pass is a scatter, as PyTorch's is; each plane is
// independent, so planes are split across cores.

extension Tensor {
  /// Max pooling over `kernel`-sized windows every `stride` pixels (default: `kernel`), as
  /// PyTorch's `F.max_pool2d(x, kernel, stride, ceil_mode=ceilMode)` on `[N, C, H, W]`.
  ///
  /// The output side is `(H - kernel) / stride + 1`, rounded down, or rounded up with
  /// `ceilMode` (a last window that starts inside the input may then hang over its edge and
  /// covers only what is inside). The gradient flows to the first maximum of each window in
  /// row-major order, as PyTorch's CPU kernel chooses.
  public func maxPool2d(kernel: Int, stride: Int? = nil, ceilMode: Bool = false) -> Tensor {
    precondition(rank == 4, "maxPool2d needs an NCHW tensor, got \(shape)")
    let s = stride ?? kernel
    precondition(kernel > 0 && s > 0, "maxPool2d: bad kernel \(kernel) or stride \(s)")
    let (h, w) = (shape[2], shape[3])
    let (ho, wo) = (
      Self.maxPool2dOutputSide(h, kernel: kernel, stride: s, ceilMode: ceilMode),
      Self.maxPool2dOutputSide(w, kernel: kernel, stride: s, ceilMode: ceilMode)
    )
    precondition(ho >= 1 && wo >= 1, "maxPool2d: kernel \(kernel) does not fit input \(shape)")
    let planes = shape[0] * shape[1]
    // Index within its plane of the element each output took; Int32 keeps the record small.
    let argmax = TensorIndexBuffer(count: planes * ho * wo)
    let result = Tensor(shape: [shape[0], shape[1], ho, wo]) { out in
      withUnsafeBufferPointer { input in
        let x = SendableConstPointer(input.baseAddress!)
        let o = SendablePointer(out.baseAddress!)
        let a = SendablePointer(argmax.pointer)
        parallelFor(planes, cost: h * w) { range in
          distill_max_pool2d(
            x.base, o.base, a.base, h, w, kernel, s, ho, wo, range.lowerBound, range.upperBound)
        }
      }
    }
    let inputShape = shape
    return result.recorded("maxPool2d", [self]) { g in
      let a = SendableConstPointer(UnsafePointer(argmax.pointer))
      return [planewise(g, inputShape, planes: planes, zeroed: true) { p, src, dst in
        let idx = a.base + p * ho * wo
        for i in 0..<(ho * wo) { dst[Int(idx[i])] += src[i] }
      }]
    }
  }
}

extension Tensor {
  /// The output side of ``maxPool2d(kernel:stride:ceilMode:)`` for an input side `side`, as
  /// PyTorch computes it; less than 1 when the input is too small. With `ceilMode` a window
  /// only has to start inside the input, so a side smaller than the kernel can still give 1.
  public static func maxPool2dOutputSide(_ side: Int, kernel: Int, stride: Int, ceilMode: Bool) -> Int {
    let span = side - kernel + (ceilMode ? stride - 1 : 0)
    // Rounded towards negative infinity, as PyTorch's div_rtn.
    var out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1
    if ceilMode && out >= 1 && (out - 1) * stride >= side { out -= 1 }
    return out
  }
}

/// The argmax record of a max pooling, owned by its backward rule.
final class TensorIndexBuffer: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<Int32>
  init(count: Int) { pointer = .allocate(capacity: Swift.max(count, 1)) }
  deinit { pointer.deallocate() }
}
