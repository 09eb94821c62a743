// Spatial resampling over the last two dimensions of NCHW tensors: average pooling and
// nearest-neighbour 2x upsampling, as PyTorch's `F.avg_pool2d` and
// `F.interpolate(scale_factor=2, mode="nearest")`. Each plane is independent, so planes are
// split across cores.

extension Tensor {
  /// Average pooling over `kernel`-sized windows every `stride` pixels (default: `kernel`), as
  /// PyTorch's `F.avg_pool2d` without padding: `[N, C, H, W]` gives
  /// `[N, C, (H - kh) / sh + 1, (W - kw) / sw + 1]`.
  public func avgPool2d(kernel: Int, stride: Int? = nil) -> Tensor {
    avgPool2d(kernel: (kernel, kernel), stride: (stride ?? kernel, stride ?? kernel))
  }

  /// Average pooling with separate (height, width) kernel sizes and strides.
  public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)) -> Tensor {
    precondition(rank == 4, "avgPool2d needs an NCHW tensor, got \(shape)")
    let (kh, kw) = kernel
    let (sh, sw) = stride
    precondition(kh > 0 && kw > 0 && sh > 0 && sw > 0, "avgPool2d: bad kernel \(kernel) or stride \(stride)")
    let (h, w) = (shape[2], shape[3])
    precondition(h >= kh && w >= kw, "avgPool2d: kernel \(kernel) larger than input \(shape)")
    let (ho, wo) = ((h - kh) / sh + 1, (w - kw) / sw + 1)
    let planes = shape[0] * shape[1]
    let scale = 1 / Float(kh * kw)
    let result = planewise(self, [shape[0], shape[1], ho, wo], planes: planes) { _, src, dst in
      for oy in 0..<ho {
        for ox in 0..<wo {
          var total: Float = 0
          for ky in 0..<kh {
            let row = src + (oy * sh + ky) * w + ox * sw
            for kx in 0..<kw { total += row[kx] }
          }
          dst[oy * wo + ox] = total * scale
        }
      }
    }
    let inputShape = shape
    return result.recorded("avgPool2d", [self]) { g in
      [planewise(g, inputShape, planes: planes, zeroed: true) { _, src, dst in
        for oy in 0..<ho {
          for ox in 0..<wo {
            let v = src[oy * wo + ox] * scale
            for ky in 0..<kh {
              let row = dst + (oy * sh + ky) * w + ox * sw
              for kx in 0..<kw { row[kx] += v }
            }
          }
        }
      }]
    }
  }

  /// Nearest-neighbour upsampling by 2 in both spatial dimensions, as PyTorch's
  /// `F.interpolate(x, scale_factor=2, mode="nearest")` on `[N, C, H, W]`: each pixel becomes
  /// a 2x2 block.
  public func upsampleNearest2x() -> Tensor {
    precondition(rank == 4, "upsampleNearest2x needs an NCHW tensor, got \(shape)")
    let (h, w) = (shape[rank - 2], shape[rank - 1])
    let planes = count / Swift.max(1, h * w)
    var outShape = shape
    outShape[rank - 2] = 2 * h
    outShape[rank - 1] = 2 * w
    let result = planewise(self, outShape, planes: planes) { _, src, dst in
      for y in 0..<h {
        let top = dst + 2 * y * 2 * w
        let row = src + y * w
        for i in 0..<w {
          top[2 * i] = row[i]
          top[2 * i + 1] = row[i]
        }
        (top + 2 * w).update(from: top, count: 2 * w)
      }
    }
    let inputShape = shape
    return result.recorded("upsampleNearest2x", [self]) { g in
      [planewise(g, inputShape, planes: planes) { _, src, dst in
        for y in 0..<h {
          let top = src + 2 * y * 2 * w
          let bottom = top + 2 * w
          for i in 0..<w {
            dst[y * w + i] = (top[2 * i] + top[2 * i + 1]) + (bottom[2 * i] + bottom[2 * i + 1])
          }
        }
      }]
    }
  }
}

/// A tensor of `shape` computed plane by plane from `source`, the planes split across cores:
/// `body(p, src, dst)` for each of `planes` planes, `src` the start of plane `p` of `source` and
/// `dst` that of the result (set to zero first when `zeroed`).
func planewise(
  _ source: Tensor, _ shape: [Int], planes: Int, zeroed: Bool = false,
  _ body: (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
) -> Tensor {
  let sourcePlane = source.count / Swift.max(1, planes)
  let resultPlane = shape.reduce(1, *) / Swift.max(1, planes)
  return Tensor(shape: shape) { out in
    if zeroed { out.initialize(repeating: 0) }
    source.withUnsafeBufferPointer { input in
      let x = SendableConstPointer(input.baseAddress!)
      let o = SendablePointer(out.baseAddress!)
      parallelFor(planes, cost: Swift.max(sourcePlane, resultPlane)) { range in
        for p in range { body(p, x.base + p * sourcePlane, o.base + p * resultPlane) }
      }
    }
  }
}
