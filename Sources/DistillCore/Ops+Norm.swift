#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// Group and layer normalisation, as PyTorch's `F.group_norm` and `F.layer_norm` (biased
// variance, optional per-channel / per-element affine). Each is one fused kernel forward
// (two-pass mean and variance in 16 float lanes, then one scale-and-shift pass) and one fused
// kernel backward using the closed form
//
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = dy * weight,
//
// with the means taken over each normalised group. Mean and rstd are kept from the forward.

/// Sum of `a[i] * b[i]` over `n` contiguous floats, in 16 lanes.
@inlinable
func dotContiguous(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
  var lanes = SIMD16<Float>()
  var i = 0
  while i + 16 <= n {
    lanes += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self)
      * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
    i += 16
  }
  var total = lanes.sum()
  while i < n {
    total += a[i] * b[i]
    i += 1
  }
  return total
}

/// Sum of `(x[i] - mean)^2` over `n` contiguous floats, in 16 lanes.
@inlinable
func squaredDeviationSum(_ x: UnsafePointer<Float>, _ n: Int, mean: Float) -> Float {
  var lanes = SIMD16<Float>()
  let m = SIMD16<Float>(repeating: mean)
  var i = 0
  while i + 16 <= n {
    let d = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) - m
    lanes += d * d
    i += 16
  }
  var total = lanes.sum()
  while i < n {
    let d = x[i] - mean
    total += d * d
    i += 1
  }
  return total
}

/// Mean and `1 / sqrt(var + eps)` of each of `rows` contiguous rows of `length` floats (two passes).
func rowStatistics(_ x: UnsafePointer<Float>, rows: Int, length: Int, eps: Float) -> (mean: [Float], rstd: [Float]) {
  var mean = [Float](repeating: 0, count: rows)
  var rstd = [Float](repeating: 0, count: rows)
  let xs = SendableConstPointer(x)
  mean.withUnsafeMutableBufferPointer { mb in
    rstd.withUnsafeMutableBufferPointer { rb in
      let mp = SendablePointer(mb.baseAddress!)
      let rp = SendablePointer(rb.baseAddress!)
      parallelFor(rows, cost: 2 * length) { range in
        for r in range {
          let row = xs.base + r * length
          let mu = sumContiguous(row, length) / Float(length)
          let variance = squaredDeviationSum(row, length, mean: mu) / Float(length)
          mp.base[r] = mu
          rp.base[r] = 1 / (variance + eps).squareRoot()
        }
      }
    }
  }
  return (mean, rstd)
}

/// `x` normalised row by row: the mean and `1 / sqrt(var + eps)` of each of its `rows` rows of
/// `length` floats, then `write(mean, rstd, x, out)` fills the result; returned with them.
func normalizedRows(
  _ x: Tensor, rows: Int, length: Int, eps: Float,
  _ write: ([Float], [Float], SendableConstPointer<Float>, SendablePointer<Float>) -> Void
) -> (Tensor, mean: [Float], rstd: [Float]) {
  var statistics: (mean: [Float], rstd: [Float]) = ([], [])
  let result = Tensor(shape: x.shape) { out in
    x.withUnsafeBufferPointer { xb in
      statistics = rowStatistics(xb.baseAddress!, rows: rows, length: length, eps: eps)
      write(statistics.mean, statistics.rstd, SendableConstPointer(xb.baseAddress!), SendablePointer(out.baseAddress!))
    }
  }
  return (result, statistics.mean, statistics.rstd)
}

/// Group normalisation's pieces, shared by ``Tensor/groupNorm(_:groups:weight:bias:eps:)`` and
/// ``Tensor/groupNormSiLU(_:groups:weight:bias:eps:)``: the shape, the statistics of the
/// forward and the per-channel affine.
struct GroupNormPass {
  let x: Tensor
  let weight: Tensor?
  let bias: Tensor?
  let n: Int, c: Int, groups: Int, spatial: Int, perGroup: Int, length: Int, rows: Int
  let weights: [Float], biases: [Float]
  var mean: [Float] = [], rstd: [Float] = []

  init(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?) {
    precondition(x.rank >= 2, "groupNorm needs [N, C, ...], got \(x.shape)")
    let (n, c) = (x.shape[0], x.shape[1])
    precondition(groups > 0 && c % groups == 0, "groupNorm: \(c) channels do not split into \(groups) groups")
    if let weight { precondition(weight.shape == [c], "groupNorm: weight \(weight.shape) does not fit \(c) channels") }
    if let bias { precondition(bias.shape == [c], "groupNorm: bias \(bias.shape) does not fit \(c) channels") }
    (self.x, self.weight, self.bias, self.n, self.c, self.groups) = (x, weight, bias, n, c, groups)
    spatial = x.count / Swift.max(1, n * c)
    perGroup = c / groups
    length = perGroup * spatial
    rows = n * groups
    weights = weight?.scalars ?? [Float](repeating: 1, count: c)
    biases = bias?.scalars ?? [Float](repeating: 0, count: c)
  }

  /// The normalised `x`, keeping its statistics.
  mutating func forward(eps: Float) -> Tensor {
    let (result, mean, rstd) = normalizedRows(x, rows: rows, length: length, eps: eps) { mean, rstd, xs, o in
      apply(mean, rstd, xs, o)
    }
    (self.mean, self.rstd) = (mean, rstd)
    return result
  }

  /// The normalised `x` again, from the kept statistics: the same arithmetic as ``forward(eps:)``.
  func recomputed() -> Tensor {
    Tensor(shape: x.shape) { out in
      x.withUnsafeBufferPointer { xb in
        apply(mean, rstd, SendableConstPointer(xb.baseAddress!), SendablePointer(out.baseAddress!))
      }
    }
  }

  private func apply(_ mean: [Float], _ rstd: [Float], _ xs: SendableConstPointer<Float>, _ o: SendablePointer<Float>) {
    let (c, perGroup, spatial, weights, biases) = (c, perGroup, spatial, weights, biases)
    parallelFor(n * c, cost: spatial) { range in
      for item in range {
        let group = item / perGroup  // sample * groups + group, as channels of a group are adjacent
        let ch = item % c
        let scale = rstd[group] * weights[ch]
        let shift = biases[ch] - mean[group] * scale
        let src = xs.base + item * spatial
        let dst = o.base + item * spatial
        for i in 0..<spatial { dst[i] = src[i] * scale + shift }
      }
    }
  }

  /// The gradients of `x`, `weight` and `bias` (those present) from the output gradient `dy`.
  func backward(_ dy: Tensor) -> [Tensor?] {
    let (x, weight, bias, n, c, groups, spatial, perGroup, length, rows, weights, mean, rstd) = (
      x, weight, bias, n, c, groups, spatial, perGroup, length, rows, weights, mean, rstd
    )
    // Per (sample, channel): sum of dy and of dy * x.
    var dySum = [Float](repeating: 0, count: n * c)
    var dyxSum = [Float](repeating: 0, count: n * c)
    var dx: Tensor? = nil
    x.withUnsafeBufferPointer { xb in
      dy.withUnsafeBufferPointer { gb in
        let xs = SendableConstPointer(xb.baseAddress!)
        let gs = SendableConstPointer(gb.baseAddress!)
        dySum.withUnsafeMutableBufferPointer { sb in
          dyxSum.withUnsafeMutableBufferPointer { pb in
            let sp = SendablePointer(sb.baseAddress!)
            let pp = SendablePointer(pb.baseAddress!)
            parallelFor(n * c, cost: 2 * spatial) { range in
              for item in range {
                sp.base[item] = sumContiguous(gs.base + item * spatial, spatial)
                pp.base[item] = dotContiguous(gs.base + item * spatial, xs.base + item * spatial, spatial)
              }
            }
          }
        }
        guard x.requiresGrad else { return }
        dx = Tensor(shape: x.shape) { out in
          let o = SendablePointer(out.baseAddress!)
          parallelFor(rows, cost: 2 * length) { range in
            for row in range {
              let mu = mean[row]
              let r = rstd[row]
              let firstChannel = row % groups * perGroup
              var sumDxhat: Float = 0
              var sumDxhatX: Float = 0
              for k in 0..<perGroup {
                let item = row * perGroup + k
                sumDxhat += weights[firstChannel + k] * dySum[item]
                sumDxhatX += weights[firstChannel + k] * dyxSum[item]
              }
              // mean(dxhat) and mean(dxhat * xhat) over the group.
              let a = sumDxhat / Float(length)
              let b = (sumDxhatX - mu * sumDxhat) * r / Float(length)
              let c2 = -r * r * b
              let c3 = r * r * b * mu - r * a
              for k in 0..<perGroup {
                let item = row * perGroup + k
                let scale = r * weights[firstChannel + k]
                let src = xs.base + item * spatial
                let grad = gs.base + item * spatial
                let dst = o.base + item * spatial
                for i in 0..<spatial { dst[i] = scale * grad[i] + c2 * src[i] + c3 }
              }
            }
          }
        }
      }
    }
    var grads: [Tensor?] = [dx]
    if let weight {
      grads.append(
        weight.requiresGrad
          ? Tensor(shape: [c]) { out in
            for ch in 0..<c {
              var total: Float = 0
              for s in 0..<n {
                let row = s * groups + ch / perGroup
                total += (dyxSum[s * c + ch] - mean[row] * dySum[s * c + ch]) * rstd[row]
              }
              out[ch] = total
            }
          } : nil)
    }
    if let bias {
      grads.append(
        bias.requiresGrad
          ? Tensor(shape: [c]) { out in
            for ch in 0..<c { out[ch] = (0..<n).reduce(0) { $0 + dySum[$1 * c + ch] } }
          } : nil)
    }
    return grads
  }
}

extension Tensor {
  /// Group normalisation as PyTorch's `F.group_norm`: `x` is `[N, C, ...]`; the `C / groups`
  /// channels of each group (with all their positions) are normalised together per sample,
  /// then channel `c` is scaled by `weight[c]` and shifted by `bias[c]` (both `[C]`, optional).
  public static func groupNorm(
    _ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5
  ) -> Tensor {
    var pass = GroupNormPass(x, groups: groups, weight: weight, bias: bias)
    let result = pass.forward(eps: eps)
    return result.recorded("groupNorm", [x] + [weight, bias].compactMap { $0 }) { [pass] dy in pass.backward(dy) }
  }

  /// Layer normalisation as PyTorch's `F.layer_norm`: normalises over the trailing dimensions
  /// `normalizedShape` (default: the last dimension), then scales by `weight` and shifts by
  /// `bias` elementwise (both of `normalizedShape`, optional).
  public static func layerNorm(
    _ x: Tensor, normalizedShape: [Int]? = nil, weight: Tensor? = nil, bias: Tensor? = nil, eps: Float = 1e-5
  ) -> Tensor {
    precondition(x.rank >= 1, "layerNorm needs at least one dimension")
    let normalized = normalizedShape ?? [x.shape[x.rank - 1]]
    precondition(
      !normalized.isEmpty && normalized.count <= x.rank && Array(x.shape.suffix(normalized.count)) == normalized,
      "layerNorm: normalized shape \(normalized) does not end input \(x.shape)")
    if let weight { precondition(weight.shape == normalized, "layerNorm: weight \(weight.shape) differs from \(normalized)") }
    if let bias { precondition(bias.shape == normalized, "layerNorm: bias \(bias.shape) differs from \(normalized)") }
    let length = normalized.reduce(1, *)
    let rows = x.count / Swift.max(1, length)
    let weights = weight?.scalars ?? [Float](repeating: 1, count: length)
    let biases = bias?.scalars ?? [Float](repeating: 0, count: length)
    let (result, mean, rstd) = normalizedRows(x, rows: rows, length: length, eps: eps) { mean, rstd, xs, o in
      weights.withUnsafeBufferPointer { wb in
        biases.withUnsafeBufferPointer { bb in
          let wp = SendableConstPointer(wb.baseAddress!)
          let bp = SendableConstPointer(bb.baseAddress!)
          parallelFor(rows, cost: length) { range in
            for row in range {
              let mu = mean[row]
              let r = rstd[row]
              let src = xs.base + row * length
              let dst = o.base + row * length
              for i in 0..<length { dst[i] = (src[i] - mu) * r * wp.base[i] + bp.base[i] }
            }
          }
        }
      }
    }
    let inputs = [x] + [weight, bias].compactMap { $0 }
    let inputCount = inputs.count
    return result.recorded("layerNorm", inputs) { dy in
      var grads: [Tensor?] = []
      x.withUnsafeBufferPointer { xb in
        dy.withUnsafeBufferPointer { gb in
          let xs = SendableConstPointer(xb.baseAddress!)
          let gs = SendableConstPointer(gb.baseAddress!)
          grads.append(
            x.requiresGrad
              ? Tensor(shape: x.shape) { out in
                let o = SendablePointer(out.baseAddress!)
                weights.withUnsafeBufferPointer { wb in
                  let wp = SendableConstPointer(wb.baseAddress!)
                  parallelFor(rows, cost: 3 * length) { range in
                    for row in range {
                      let mu = mean[row]
                      let r = rstd[row]
                      let src = xs.base + row * length
                      let grad = gs.base + row * length
                      let dst = o.base + row * length
                      // dst holds dxhat first; then the closed form.
                      var sumDxhat: Float = 0
                      var sumDxhatXhat: Float = 0
                      for i in 0..<length {
                        let d = grad[i] * wp.base[i]
                        dst[i] = d
                        sumDxhat += d
                        sumDxhatXhat += d * (src[i] - mu)
                      }
                      let a = sumDxhat / Float(length)
                      let b = sumDxhatXhat * r / Float(length)
                      for i in 0..<length { dst[i] = r * (dst[i] - a - (src[i] - mu) * r * b) }
                    }
                  }
                }
              } : nil)
          // Weight and bias gradients: column sums over rows, split by column blocks.
          let wantWeight = weight?.requiresGrad ?? false
          let wantBias = bias?.requiresGrad ?? false
          guard wantWeight || wantBias else { return }
          var dw = [Float](repeating: 0, count: length)
          var db = [Float](repeating: 0, count: length)
          dw.withUnsafeMutableBufferPointer { dwb in
            db.withUnsafeMutableBufferPointer { dbb in
              let dwp = SendablePointer(dwb.baseAddress!)
              let dbp = SendablePointer(dbb.baseAddress!)
              parallelFor(length, cost: 2 * rows) { columns in
                for row in 0..<rows {
                  let mu = mean[row]
                  let r = rstd[row]
                  let src = xs.base + row * length
                  let grad = gs.base + row * length
                  for i in columns {
                    dwp.base[i] += grad[i] * (src[i] - mu) * r
                    dbp.base[i] += grad[i]
                  }
                }
              }
            }
          }
          if let weight { grads.append(weight.requiresGrad ? Tensor(shape: weight.shape, scalars: dw) : nil) }
          if let bias { grads.append(bias.requiresGrad ? Tensor(shape: bias.shape, scalars: db) : nil) }
        }
      }
      // Pad with nils when neither affine gradient was wanted.
      while grads.count < inputCount { grads.append(nil) }
      return grads
    }
  }
}
