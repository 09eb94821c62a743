import DistillCore

// The head of one tapped layer as one op: unit-normalise both feature maps over channels,
// weight the squared difference per channel, average over pixels. Composed from elementwise
// ops this is a dozen passes and temporaries per layer, and the composed gradient of
// `sqrt(sum f^2)` is 0 * inf = NaN at a pixel where every channel is zero (which ReLU
// produces); the fused rule is exact there: the normalised map is 0 and so is its gradient.
//
// With s = |f| + eps (|f| the norm over channels at a pixel), u = f / s, r = dL/du:
//   dL/df_c = r_c / s - f_c * (sum_k r_k f_k) / (s^2 |f|)      (second term 0 where |f| = 0)

extension LPIPS {
  /// `mean_{h,w} sum_c weight[c] (f0 / (|f0| + eps) - f1 / (|f1| + eps))^2` for each sample:
  /// `[N]` from two `[N, C, H, W]` maps and `[C]` weights (not differentiated).
  static func layerDistance(_ f0: Tensor, _ f1: Tensor, weight: Tensor) -> Tensor {
    precondition(f0.shape == f1.shape && f0.rank == 4 && weight.shape == [f0.shape[1]], "layerDistance: bad shapes")
    let (n, c, p) = (f0.shape[0], f0.shape[1], f0.shape[2] * f0.shape[3])
    let eps = LPIPS.epsilon
    let result = Tensor(shape: [n]) { out in
      f0.withUnsafeBufferPointer { a in
        f1.withUnsafeBufferPointer { b in
          weight.withUnsafeBufferPointer { w in
            var scratch = [Float](repeating: 0, count: 5 * p)
            scratch.withUnsafeMutableBufferPointer { s in
              let (norm0, norm1, inv0, inv1, total) = (s.baseAddress!, s.baseAddress! + p, s.baseAddress! + 2 * p,
                                                      s.baseAddress! + 3 * p, s.baseAddress! + 4 * p)
              for i in 0..<n {
                let x0 = a.baseAddress! + i * c * p
                let x1 = b.baseAddress! + i * c * p
                inverseNorms(x0, channels: c, pixels: p, eps: eps, norm: norm0, inverse: inv0)
                inverseNorms(x1, channels: c, pixels: p, eps: eps, norm: norm1, inverse: inv1)
                total.update(repeating: 0, count: p)
                for ch in 0..<c {
                  let wc = w[ch]
                  let r0 = x0 + ch * p
                  let r1 = x1 + ch * p
                  for j in 0..<p {
                    let d = r0[j] * inv0[j] - r1[j] * inv1[j]
                    total[j] += wc * (d * d)
                  }
                }
                var sum: Double = 0
                for j in 0..<p { sum += Double(total[j]) }
                out[i] = Float(sum / Double(p))
              }
            }
          }
        }
      }
    }
    return result.recorded("lpipsLayerDistance", [f0, f1]) { g in
      let (grad0, grad1) = layerDistanceGradients(f0, f1, weight: weight, outputGradient: g)
      return [f0.requiresGrad ? grad0 : nil, f1.requiresGrad ? grad1 : nil]
    }
  }

  /// The gradients of ``layerDistance(_:_:weight:)`` with respect to both maps.
  private static func layerDistanceGradients(
    _ f0: Tensor, _ f1: Tensor, weight: Tensor, outputGradient g: Tensor
  ) -> (Tensor, Tensor) {
    let (n, c, p) = (f0.shape[0], f0.shape[1], f0.shape[2] * f0.shape[3])
    let eps = LPIPS.epsilon
    var grad1 = Tensor.zeros(f1.shape)
    let grad0 = Tensor(shape: f0.shape) { out0 in
      grad1.withUnsafeMutableBufferPointer { out1 in
        f0.withUnsafeBufferPointer { a in
          f1.withUnsafeBufferPointer { b in
            weight.withUnsafeBufferPointer { w in
              g.withUnsafeBufferPointer { gb in
                var scratch = [Float](repeating: 0, count: 6 * p)
                scratch.withUnsafeMutableBufferPointer { s in
                  let base = s.baseAddress!
                  let (norm0, norm1, inv0, inv1, dot0, dot1) = (base, base + p, base + 2 * p, base + 3 * p, base + 4 * p, base + 5 * p)
                  for i in 0..<n {
                    let x0 = a.baseAddress! + i * c * p
                    let x1 = b.baseAddress! + i * c * p
                    let o0 = out0.baseAddress! + i * c * p
                    let o1 = out1.baseAddress! + i * c * p
                    let scale = 2 * gb[i] / Float(p)
                    inverseNorms(x0, channels: c, pixels: p, eps: eps, norm: norm0, inverse: inv0)
                    inverseNorms(x1, channels: c, pixels: p, eps: eps, norm: norm1, inverse: inv1)
                    dot0.update(repeating: 0, count: p)
                    dot1.update(repeating: 0, count: p)
                    // r = scale * w_c * (u0 - u1), kept in the output buffers until the projection.
                    for ch in 0..<c {
                      let k = scale * w[ch]
                      let (r0, r1, q0, q1) = (x0 + ch * p, x1 + ch * p, o0 + ch * p, o1 + ch * p)
                      for j in 0..<p {
                        let r = k * (r0[j] * inv0[j] - r1[j] * inv1[j])
                        q0[j] = r
                        dot0[j] += r * r0[j]
                        dot1[j] += r * r1[j]
                      }
                    }
                    // dot <- (sum_k r_k f_k) / (s^2 |f|), zero where |f| = 0.
                    for j in 0..<p {
                      dot0[j] = norm0[j] > 0 ? dot0[j] * inv0[j] * inv0[j] / norm0[j] : 0
                      dot1[j] = norm1[j] > 0 ? dot1[j] * inv1[j] * inv1[j] / norm1[j] : 0
                    }
                    for ch in 0..<c {
                      let (r0, r1, q0, q1) = (x0 + ch * p, x1 + ch * p, o0 + ch * p, o1 + ch * p)
                      for j in 0..<p {
                        let r = q0[j]
                        q0[j] = r * inv0[j] - r0[j] * dot0[j]
                        q1[j] = -r * inv1[j] + r1[j] * dot1[j]
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    return (grad0, grad1)
  }
}

/// `norm[j] = sqrt(sum_c x[c, j]^2)` and `inverse[j] = 1 / (norm[j] + eps)` for a
/// `[channels, pixels]` map.
private func inverseNorms(
  _ x: UnsafePointer<Float>, channels: Int, pixels: Int, eps: Float, norm: UnsafeMutablePointer<Float>,
  inverse: UnsafeMutablePointer<Float>
) {
  norm.update(repeating: 0, count: pixels)
  for ch in 0..<channels {
    let row = x + ch * pixels
    for j in 0..<pixels { norm[j] += row[j] * row[j] }
  }
  for j in 0..<pixels {
    norm[j] = norm[j].squareRoot()
    inverse[j] = 1 / (norm[j] + eps)
  }
}
