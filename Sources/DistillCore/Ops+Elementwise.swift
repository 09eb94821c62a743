import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The sine and cosine of every angle, in one vectorised pass (CKernels). The kernel is exact
/// enough only below 8192 in magnitude, so a larger angle sends all of them through libm.
public func sinesAndCosines(_ angles: [Float]) -> (sines: [Float], cosines: [Float]) {
  var sines = [Float](repeating: 0, count: angles.count)
  var cosines = [Float](repeating: 0, count: angles.count)
  if angles.allSatisfy({ Swift.abs($0) < 8192 }) {
    distill_sincos(angles, &sines, &cosines, angles.count)
  } else {
    for i in angles.indices { (sines[i], cosines[i]) = (sinf(angles[i]), cosf(angles[i])) }
  }
  return (sines, cosines)
}

/// `kernel(input, output, count)` over a fresh tensor of `x`'s shape, split across threads:
/// these kernels compute a polynomial per element, so a few thousand elements pay for it.
@inline(__always)
func mapKernel(_ x: Tensor, _ kernel: @escaping @Sendable (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void)
  -> Tensor
{
  Tensor(shape: x.shape) { out in
    x.withUnsafeBufferPointer { input in
      let (s, o) = (SendableConstPointer(input.baseAddress!), SendablePointer(out.baseAddress!))
      parallelFor(out.count, cost: 16) { range in kernel(s.base + range.lowerBound, o.base + range.lowerBound, range.count) }
    }
  }
}

/// `kernel(g, x, out, count)` over same-shape `g` and `x`, in parallel chunks: the gradient
/// kernels of CKernels' activations.
func mapGradientKernel(
  _ g: Tensor, _ x: Tensor,
  _ kernel: @escaping @Sendable (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void
) -> Tensor {
  precondition(g.shape == x.shape)
  return Tensor(shape: x.shape) { out in
    g.withUnsafeBufferPointer { gs in
      x.withUnsafeBufferPointer { xs in
        let (gp, xp, o) = (SendableConstPointer(gs.baseAddress!), SendableConstPointer(xs.baseAddress!), SendablePointer(out.baseAddress!))
        parallelFor(out.count, cost: 16) { range in
          kernel(gp.base + range.lowerBound, xp.base + range.lowerBound, o.base + range.lowerBound, range.count)
        }
      }
    }
  }
}

/// The gradient of ``Tensor/silu()`` at `x` for the output gradient `g`.
func siluGradient(_ g: Tensor, _ x: Tensor) -> Tensor {
  mapGradientKernel(g, x) { distill_silu_backward($0, $1, $2, $3) }
}

// MARK: Arithmetic with broadcasting

extension Tensor {
  // The rules of `+`, `-` and `where` capture their operands' shapes, not the operands: a
  // closure that read `a.shape` would keep `a`'s buffer alive until the backward pass (a
  // residual block's convolution outputs, for one).

  public static func + (a: Tensor, b: Tensor) -> Tensor {
    let (aShape, bShape, aGrad, bGrad) = (a.shape, b.shape, a.requiresGrad, b.requiresGrad)
    return mapBinary(a, b) { $0 + $1 }.recorded("add", [a, b]) { g in
      [aGrad ? g.sum(toShape: aShape) : nil, bGrad ? g.sum(toShape: bShape) : nil]
    }
  }

  public static func - (a: Tensor, b: Tensor) -> Tensor {
    let (aShape, bShape, aGrad, bGrad) = (a.shape, b.shape, a.requiresGrad, b.requiresGrad)
    return mapBinary(a, b) { $0 - $1 }.recorded("sub", [a, b]) { g in
      [aGrad ? g.sum(toShape: aShape) : nil, bGrad ? (-g).sum(toShape: bShape) : nil]
    }
  }

  public static func * (a: Tensor, b: Tensor) -> Tensor {
    mapBinary(a, b) { $0 * $1 }.recorded("mul", [a, b]) { g in
      [a.requiresGrad ? mapBinary(g, b) { $0 * $1 }.sum(toShape: a.shape) : nil,
       b.requiresGrad ? mapBinary(g, a) { $0 * $1 }.sum(toShape: b.shape) : nil]
    }
  }

  public static func / (a: Tensor, b: Tensor) -> Tensor {
    mapBinary(a, b) { $0 / $1 }.recorded("div", [a, b]) { g in
      [a.requiresGrad ? mapBinary(g, b) { $0 / $1 }.sum(toShape: a.shape) : nil,
       b.requiresGrad ? (mapBinary(g, a) { $0 * $1 } / (b * b)).neg().sum(toShape: b.shape) : nil]
    }
  }

  public static prefix func - (x: Tensor) -> Tensor { x.neg() }

  public func neg() -> Tensor { mapUnary(self) { -$0 }.recorded("neg", [self]) { g in [-g] } }

  public static func + (a: Tensor, s: Float) -> Tensor { mapUnary(a) { $0 + s }.recorded("add", [a]) { g in [g] } }
  public static func + (s: Float, a: Tensor) -> Tensor { a + s }
  public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
  public static func - (s: Float, a: Tensor) -> Tensor { mapUnary(a) { s - $0 }.recorded("sub", [a]) { g in [-g] } }
  public static func * (a: Tensor, s: Float) -> Tensor { mapUnary(a) { $0 * s }.recorded("mul", [a]) { g in [g * s] } }
  public static func * (s: Float, a: Tensor) -> Tensor { a * s }
  public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
  public static func / (s: Float, a: Tensor) -> Tensor {
    mapUnary(a) { s / $0 }.recorded("div", [a]) { g in [mapBinary(g, a) { g, x in -g * s / (x * x) }] }
  }
}

// MARK: Unary math

extension Tensor {
  public func exp() -> Tensor {
    let y = mapKernel(self) { distill_exp($0, $1, $2) }
    return y.recorded("exp", [self]) { g in [mapBinary(g, y) { $0 * $1 }] }
  }

  /// Natural logarithm.
  public func log() -> Tensor {
    mapUnary(self) { logf($0) }.recorded("log", [self]) { g in [mapBinary(g, self) { $0 / $1 }] }
  }

  public func sqrt() -> Tensor {
    let y = mapUnary(self) { sqrtf($0) }
    return y.recorded("sqrt", [self]) { g in [mapBinary(g, y) { 0.5 * $0 / $1 }] }
  }

  /// `1 / sqrt(x)`.
  public func rsqrt() -> Tensor {
    let y = mapUnary(self) { 1 / sqrtf($0) }
    return y.recorded("rsqrt", [self]) { g in [mapBinary(g, y) { -0.5 * $0 * $1 * $1 * $1 }] }
  }

  /// `x ** exponent`.
  public func pow(_ exponent: Float) -> Tensor {
    mapUnary(self) { powf($0, exponent) }.recorded("pow", [self]) { g in
      [mapBinary(g, self) { g, x in g * exponent * powf(x, exponent - 1) }]
    }
  }

  public func abs() -> Tensor {
    mapUnary(self) { Swift.abs($0) }.recorded("abs", [self]) { g in
      [mapBinary(g, self) { g, x in x > 0 ? g : (x < 0 ? -g : 0) }]
    }
  }

  public func square() -> Tensor {
    mapUnary(self) { $0 * $0 }.recorded("square", [self]) { g in [mapBinary(g, self) { 2 * $0 * $1 }] }
  }

  /// Limits every element to `[min, max]`; the gradient passes where the input lies inside.
  public func clamp(min low: Float = -.infinity, max high: Float = .infinity) -> Tensor {
    mapUnary(self) { Swift.min(Swift.max($0, low), high) }.recorded("clamp", [self]) { g in
      [mapBinary(g, self) { g, x in x >= low && x <= high ? g : 0 }]
    }
  }

  public func sin() -> Tensor {
    mapUnary(self) { sinf($0) }.recorded("sin", [self]) { g in [mapBinary(g, self) { $0 * cosf($1) }] }
  }

  public func cos() -> Tensor {
    mapUnary(self) { cosf($0) }.recorded("cos", [self]) { g in [mapBinary(g, self) { -$0 * sinf($1) }] }
  }

  /// Replaces NaN by `nan` and infinities by `posinf` / `neginf` (the largest finite floats by
  /// default, as PyTorch does). The gradient is zero where the input was not finite.
  public func nanToNum(nan: Float = 0, posinf: Float = .greatestFiniteMagnitude, neginf: Float = -.greatestFiniteMagnitude)
    -> Tensor
  {
    mapUnary(self) { $0.isNaN ? nan : ($0 == .infinity ? posinf : ($0 == -.infinity ? neginf : $0)) }
      .recorded("nanToNum", [self]) { g in [mapBinary(g, self) { g, x in x.isFinite ? g : 0 }] }
  }
}

// MARK: Activations

extension Tensor {
  public func relu() -> Tensor {
    mapUnary(self) { Swift.max($0, 0) }.recorded("relu", [self]) { g in [mapBinary(g, self) { $1 > 0 ? $0 : 0 }] }
  }

  public func sigmoid() -> Tensor {
    let y = mapKernel(self) { distill_sigmoid($0, $1, $2) }
    return y.recorded("sigmoid", [self]) { g in [mapBinary(g, y) { $0 * $1 * (1 - $1) }] }
  }

  public func tanh() -> Tensor {
    let y = mapUnary(self) { tanhf($0) }
    return y.recorded("tanh", [self]) { g in [mapBinary(g, y) { $0 * (1 - $1 * $1) }] }
  }

  /// `x * sigmoid(x)`, also called swish.
  public func silu() -> Tensor {
    mapKernel(self) { distill_silu($0, $1, $2) }.recorded("silu", [self]) { g in [siluGradient(g, self)] }
  }

  /// GELU, exact (`x * Phi(x)`) or with PyTorch's tanh approximation.
  public func gelu(approximateTanh: Bool = false) -> Tensor {
    if approximateTanh {
      let c: Float = 0.797_884_560_802_865_4  // sqrt(2 / pi)
      return mapUnary(self) { x in 0.5 * x * (1 + tanhf(c * (x + 0.044715 * x * x * x))) }
        .recorded("gelu", [self]) { g in
          [mapBinary(g, self) { g, x in
            let t = tanhf(c * (x + 0.044715 * x * x * x))
            return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x))
          }]
        }
    }
    // erf within 1.5e-7 (CKernels; the formula of PyTorch's vectorised erf), 16 lanes wide.
    return mapKernel(self) { distill_gelu($0, $1, $2) }.recorded("gelu", [self]) { g in
      [mapGradientKernel(g, self) { distill_gelu_backward($0, $1, $2, $3) }]
    }
  }

  /// GEGLU over the last axis (diffusers' `GEGLU` after its projection): the first half of
  /// each row times the exact GELU of the second half, `[..., 2h]` to `[..., h]`, in one pass
  /// (no copies of the halves).
  public func geglu() -> Tensor {
    precondition(rank >= 1 && shape[rank - 1] % 2 == 0, "geglu needs an even last axis, got \(shape)")
    let h = shape[rank - 1] / 2
    let rows = h == 0 ? 0 : count / (2 * h)
    let x = self
    let result = Tensor(shape: Array(shape.dropLast()) + [h]) { out in
      x.withUnsafeBufferPointer { input in
        let (s, o) = (SendableConstPointer(input.baseAddress!), SendablePointer(out.baseAddress!))
        parallelFor(rows, cost: 16 * h) { range in
          distill_geglu(s.base + range.lowerBound * 2 * h, o.base + range.lowerBound * h, range.count, h)
        }
      }
    }
    return result.recorded("geglu", [x]) { g in
      [Tensor(shape: x.shape) { out in
        g.withUnsafeBufferPointer { gs in
          x.withUnsafeBufferPointer { xs in
            let (gp, xp, o) = (SendableConstPointer(gs.baseAddress!), SendableConstPointer(xs.baseAddress!), SendablePointer(out.baseAddress!))
            parallelFor(rows, cost: 32 * h) { range in
              distill_geglu_backward(
                gp.base + range.lowerBound * h, xp.base + range.lowerBound * 2 * h, o.base + range.lowerBound * 2 * h,
                range.count, h)
            }
          }
        }
      }]
    }
  }

  /// `log(1 + exp(x))`, linear above `threshold` as in PyTorch.
  public func softplus(threshold: Float = 20) -> Tensor {
    mapUnary(self) { $0 > threshold ? $0 : log1pf(expf($0)) }.recorded("softplus", [self]) { g in
      [mapBinary(g, self) { g, x in x > threshold ? g : g / (1 + expf(-x)) }]
    }
  }
}

// MARK: Selection and comparison

extension Tensor {
  /// 1 where `self > other`, else 0. Not differentiable.
  public func greater(than other: Tensor) -> Tensor { mapBinary(self, other) { $0 > $1 ? 1 : 0 }.detached() }
  public func greater(than value: Float) -> Tensor { mapUnary(self) { $0 > value ? 1 : 0 } }
  public func less(than value: Float) -> Tensor { mapUnary(self) { $0 < value ? 1 : 0 } }
  /// 1 where the element is finite, else 0.
  public func isFinite() -> Tensor { mapUnary(self) { $0.isFinite ? 1 : 0 } }

  /// Elements of `a` where `condition` is non-zero, of `b` elsewhere; all three broadcast.
  public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
    let shape = broadcastShape(broadcastShape(condition.shape, a.shape), b.shape)
    let c = condition.detached().expand(to: shape)
    let result = mapTernary(c, a.detached().expand(to: shape), b.detached().expand(to: shape)) { $0 != 0 ? $1 : $2 }
    let (aShape, bShape, aGrad, bGrad) = (a.shape, b.shape, a.requiresGrad, b.requiresGrad)
    return result.recorded("where", [a, b]) { g in
      [aGrad ? mapBinary(g, c) { $1 != 0 ? $0 : 0 }.sum(toShape: aShape) : nil,
       bGrad ? mapBinary(g, c) { $1 != 0 ? 0 : $0 }.sum(toShape: bShape) : nil]
    }
  }

  /// The elementwise maximum of two broadcast tensors; a tie splits the gradient equally, as
  /// PyTorch's `torch.maximum` does.
  public static func maximum(_ a: Tensor, _ b: Tensor) -> Tensor {
    mapBinary(a, b) { Swift.max($0, $1) }.recorded("maximum", [a, b]) { g in
      let share = mapBinary(a, b) { $0 > $1 ? 1 : ($0 == $1 ? 0.5 : 0) }
      return [a.requiresGrad ? (g * share).sum(toShape: a.shape) : nil,
              b.requiresGrad ? (g * (1 - share)).sum(toShape: b.shape) : nil]
    }
  }
}
