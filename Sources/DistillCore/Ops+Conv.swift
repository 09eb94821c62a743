import CKernels

// 2-D convolution and transposed convolution over NCHW tensors, as PyTorch's `F.conv2d` and
// `F.conv_transpose2d` (no dilation, no groups).
//
// The batch is lowered in chunks of samples: im2col writes a chunk's patches side by side into
// one `[C*kh*kw, n*Ho*Wo]` matrix, so each product is one sgemm of about a thousand columns
// (OpenBLAS threads it) instead of many thin ones, while the patch matrix stays cache-sized;
// an `[O, n, Ho*Wo]` product is then reordered to NCHW. Backward recomputes the patches
// instead of keeping them alive with the graph.

/// The shapes of one convolution: input `[n, c, h, w]`, weight `[o, c, kh, kw]`,
/// output `[n, o, ho, wo]`.
struct ConvGeometry {
  let n: Int, c: Int, h: Int, w: Int
  let o: Int, kh: Int, kw: Int
  let sh: Int, sw: Int, ph: Int, pw: Int
  let ho: Int, wo: Int

  /// Rows of the patch matrix.
  var patch: Int { c * kh * kw }
  /// Output pixels per sample.
  var pixels: Int { ho * wo }
  var inputShape: [Int] { [n, c, h, w] }
  var outputShape: [Int] { [n, o, ho, wo] }
  /// A 1x1, stride-1, unpadded convolution: a plain product per sample.
  var isPointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 }

  /// This geometry for the CKernels im2col and col2im.
  var cGeometry: distill_conv_geometry {
    distill_conv_geometry(n: n, c: c, h: h, w: w, kh: kh, kw: kw, sh: sh, sw: sw, ph: ph, pw: pw, ho: ho, wo: wo)
  }

  /// Whether CKernels runs this convolution's forward pass direct (conv.c) rather than as an
  /// implicit product (needs the own kernel, ``GemmKernel/isOwn``).
  var runsDirect: Bool { GemmKernel.isOwn && distill_conv2d_runs_direct(cGeometry) != 0 }
}

extension ConvGeometry {
  /// The geometry of `conv2d` of an input of shape `x` by `weight` (and `bias`), checking
  /// that they fit.
  init(conv2d x: [Int], weight: Tensor, bias: Tensor?, stride: (Int, Int), padding: (Int, Int)) {
    precondition(x.count == 4 && weight.rank == 4, "conv2d needs NCHW input and OIHW weight, got \(x), \(weight.shape)")
    precondition(x[1] == weight.shape[1], "conv2d: input \(x) has \(x[1]) channels, weight \(weight.shape) expects \(weight.shape[1])")
    precondition(stride.0 > 0 && stride.1 > 0 && padding.0 >= 0 && padding.1 >= 0, "conv2d: bad stride \(stride) or padding \(padding)")
    let (n, c, h, w) = (x[0], x[1], x[2], x[3])
    let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    precondition(h + 2 * padding.0 >= kh && w + 2 * padding.1 >= kw, "conv2d: kernel \(kh)x\(kw) larger than padded input \(x)")
    if let bias { precondition(bias.shape == [o], "conv2d: bias \(bias.shape) does not fit \(o) output channels") }
    self.init(
      n: n, c: c, h: h, w: w, o: o, kh: kh, kw: kw, sh: stride.0, sw: stride.1, ph: padding.0, pw: padding.1,
      ho: (h + 2 * padding.0 - kh) / stride.0 + 1, wo: (w + 2 * padding.1 - kw) / stride.1 + 1)
  }
}

// MARK: Kernels

/// Writes the patches of samples `0..<g.n` into `col`, `[g.patch, g.n * g.pixels]` row-major:
/// column `s * pixels + oy * wo + ox`, row `(ci * kh + ky) * kw + kx`. Zeros where the
/// window hangs over the padding. The rows are short (a few dozen floats), so the copies run
/// in CKernels, vectorised for the CPU, rather than as one memmove call per row.
func im2col(_ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
  overInputPlanes(g) { distill_im2col(x, col, $0, $1, $2) }
}

/// The adjoint of ``im2col(_:_:_:)``: sums the patch-matrix entries back onto the input
/// positions they were read from, overwriting `x` (`[n, c, h, w]`).
func col2im(_ col: UnsafePointer<Float>, _ x: UnsafeMutablePointer<Float>, _ g: ConvGeometry) {
  overInputPlanes(g) { distill_col2im(col, x, $0, $1, $2) }
}

/// Runs a CKernels patch kernel (geometry, first and end plane) over the `n · c` input planes
/// of `g`, split across threads.
private func overInputPlanes(_ g: ConvGeometry, _ kernel: (distill_conv_geometry, Int, Int) -> Void) {
  let geometry = g.cGeometry
  parallelFor(g.n * g.c, cost: g.kh * g.kw * g.pixels) { range in kernel(geometry, range.lowerBound, range.upperBound) }
}

/// Reorders `[a, b, inner]` blocks to `[b, a, inner]`.
func swapLeadingAxes(
  _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, a: Int, b: Int, inner: Int
) {
  let s = SendableConstPointer(src)
  let d = SendablePointer(dst)
  parallelFor(a * b, cost: inner) { range in
    for item in range {
      let (i, j) = item.quotientAndRemainder(dividingBy: b)
      (d.base + (j * a + i) * inner).update(from: s.base + item * inner, count: inner)
    }
  }
}

/// A scratch buffer of `count` floats for the duration of `body`.
@inline(__always)
func withScratch<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
  let storage = TensorStorage(uninitializedCount: count)
  return withExtendedLifetime(storage) { body(storage.pointer) }
}

/// Output columns (samples x pixels) lowered per product. Thin per-sample products thread
/// poorly in OpenBLAS for small images, and the patch matrix of a whole batch of large images
/// falls out of cache (N=16, C=64, 32x32: 2-3x slower than per-sample); chunks of about this
/// many columns were as fast as the better of the two on 16x16 and 32x32 images.
let convChunkColumns = 1024

extension ConvGeometry {
  /// Whether the forward product runs as one implicit product over the batch (CKernels
  /// conv.c: patches gathered while packing, output stored in NCHW), which needs Distillery's
  /// product kernel. Output planes of whole 32-column panels always do; others (a panel that
  /// spans two or more samples' planes is stored through a tile) when the patches gather as
  /// masked vectors (stride-1 columns, kernels at most 8 wide): AlexNet's 11x11 stride-4 layer
  /// was slower gathered element by element than through the patch matrix.
  var runsImplicitly: Bool { GemmKernel.isOwn && (pixels % 32 == 0 || (sw == 1 && kw <= 8)) }

  /// Threads for this convolution's products.
  var threads: Int { GemmKernel.threads(multiplyAdds: n * o * pixels * patch) }

  /// The input gradient of a stride-1 convolution as a convolution of the output gradient:
  /// `dx[s, c, y, x] = sum grad[s, o, y + ph - ky, x + pw - kx] w[o, c, ky, kx]`, which is
  /// the output gradient convolved with the weight flipped in both axes and transposed to
  /// `[c, o, kh, kw]`, padded by `k - 1 - p`. That runs direct or as an implicit product too
  /// (`distill_conv2d_forward` with `flipped`: the weight is read flipped while it is packed),
  /// where the patch-matrix route would write a patch matrix and sum it back with col2im.
  /// `nil` where it does not apply (strides, padding of a kernel's size or more, or planes
  /// that do not run implicitly).
  var adjointConvolution: ConvGeometry? {
    guard sh == 1 && sw == 1 && ph < kh && pw < kw else { return nil }
    let adjoint = ConvGeometry(
      n: n, c: o, h: ho, w: wo, o: c, kh: kh, kw: kw, sh: 1, sw: 1, ph: kh - 1 - ph, pw: kw - 1 - pw, ho: h, wo: w)
    return adjoint.runsImplicitly ? adjoint : nil
  }

  /// This geometry restricted to `count` samples.
  func with(samples count: Int) -> ConvGeometry {
    ConvGeometry(n: count, c: c, h: h, w: w, o: o, kh: kh, kw: kw, sh: sh, sw: sw, ph: ph, pw: pw, ho: ho, wo: wo)
  }

  /// The batch split into consecutive sample ranges of about ``convChunkColumns`` output columns.
  var chunks: [Range<Int>] {
    let size = Swift.max(1, Swift.min(n, convChunkColumns / Swift.max(pixels, 1)))
    return stride(from: 0, to: n, by: size).map { $0..<Swift.min(n, $0 + size) }
  }

  /// The products of a 1x1 convolution, sample by sample: `out[s] = W · input[s]` (forward), or
  /// `Wᵀ · input[s]` when `transposed` (the input gradient, from the output gradient).
  func pointwiseProducts(
    _ w: UnsafePointer<Float>, _ input: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, transposed: Bool
  ) {
    let (rows, depth) = transposed ? (c, o) : (o, c)
    for s in 0..<n {
      sgemm(w, transposeA: transposed, input + s * depth * pixels, transposeB: false, out + s * rows * pixels,
            m: rows, n: pixels, k: depth)
    }
  }

  /// Calls `body(index, chunk, part, col, product)` for each of ``chunks`` in order, with `part`
  /// the chunk's geometry and scratch for its patch columns (`col`) and, when chunks hold
  /// several samples, for their product (`product`).
  func forEachChunk(
    _ body: (Int, Range<Int>, ConvGeometry, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
  ) {
    let chunks = self.chunks
    let most = chunks.map(\.count).max()!
    withScratch(patch * most * pixels) { col in
      withScratch(most > 1 ? o * most * pixels : 0) { product in
        for (index, chunk) in chunks.enumerated() { body(index, chunk, with(samples: chunk.count), col, product) }
      }
    }
  }
}

/// `[n, o, ho, wo]` convolution of `x` (`[n, c, h, w]`) with `weight` (`[o, c, kh, kw]`),
/// without bias.
func convForward(_ x: Tensor, _ weight: Tensor, _ g: ConvGeometry) -> Tensor {
  if weight.isBFloat16 { return convolutionOfBFloat16Weight(x, weight, g, flipped: false) }
  return Tensor(shape: g.outputShape) { out in
    x.withUnsafeBufferPointer { xb in
      weight.withUnsafeBufferPointer { wb in
        let wp = wb.baseAddress!
        if g.runsImplicitly {
          distill_conv2d_forward(
            g.threads, xb.baseAddress!, wp, 0, g.o, out.baseAddress!, g.cGeometry, ComputePrecision.current.kernelFlag)
          return
        }
        if g.isPointwise { return g.pointwiseProducts(wp, xb.baseAddress!, out.baseAddress!, transposed: false) }
        g.forEachChunk { _, chunk, part, col, product in
          let xp = xb.baseAddress! + chunk.lowerBound * g.c * g.h * g.w
          let op = out.baseAddress! + chunk.lowerBound * g.o * g.pixels
          im2col(xp, col, part)
          if chunk.count == 1 {
            sgemm(wp, transposeA: false, col, transposeB: false, op, m: g.o, n: g.pixels, k: g.patch)
          } else {
            sgemm(wp, transposeA: false, col, transposeB: false, product, m: g.o, n: part.n * g.pixels, k: g.patch)
            swapLeadingAxes(product, op, a: g.o, b: part.n, inner: g.pixels)
          }
        }
      }
    }
  }
}

/// The gradient of ``convForward(_:_:_:)`` with respect to its input: `[n, c, h, w]` from an
/// output gradient `grad` (`[n, o, ho, wo]`).
func convInputGradient(_ grad: Tensor, _ weight: Tensor, _ g: ConvGeometry) -> Tensor {
  if weight.isBFloat16 { return convolutionOfBFloat16Weight(grad, weight, g, flipped: true) }
  if let adjoint = g.adjointConvolution {
    return Tensor(shape: g.inputShape) { out in
      grad.withUnsafeBufferPointer { gb in
        weight.withUnsafeBufferPointer { wb in
          distill_conv2d_forward(
            adjoint.threads, gb.baseAddress!, wb.baseAddress!, 1, adjoint.o, out.baseAddress!, adjoint.cGeometry,
            ComputePrecision.current.kernelFlag)
        }
      }
    }
  }
  return Tensor(shape: g.inputShape) { out in
    grad.withUnsafeBufferPointer { gb in
      weight.withUnsafeBufferPointer { wb in
        let wp = wb.baseAddress!
        if g.isPointwise { return g.pointwiseProducts(wp, gb.baseAddress!, out.baseAddress!, transposed: true) }
        g.forEachChunk { _, chunk, part, col, product in
          let gp = gb.baseAddress! + chunk.lowerBound * g.o * g.pixels
          if chunk.count == 1 {
            sgemm(wp, transposeA: true, gp, transposeB: false, col, m: g.patch, n: g.pixels, k: g.o)
          } else {
            swapLeadingAxes(gp, product, a: part.n, b: g.o, inner: g.pixels)
            sgemm(wp, transposeA: true, product, transposeB: false, col, m: g.patch, n: part.n * g.pixels, k: g.o)
          }
          col2im(col, out.baseAddress! + chunk.lowerBound * g.c * g.h * g.w, part)
        }
      }
    }
  }
}

/// ``convForward(_:_:_:)`` (or with `flipped`, ``convInputGradient(_:_:_:)``) of a weight held
/// in bfloat16, with bfloat16 products on the process's ``BF16Kernel``: a convolution that runs
/// direct reads the bfloat16 values as they are on `dot` (CKernels `conv_bf16.c`) and widens
/// them a block of output channels at a time as it packs them on `rounded` (`conv.c`), so
/// neither holds a widened copy of the layer; any other widens the weight for the call
/// (docs/benchmarks.md, "Held weights convolve on `dot`" and "held weights widened a block at
/// a time").
private func convolutionOfBFloat16Weight(_ x: Tensor, _ weight: Tensor, _ g: ConvGeometry, flipped: Bool) -> Tensor {
  precondition(ComputePrecision.bf16Supported, "bfloat16 weights need a CPU with AVX512-BF16 and Distillery's kernel")
  if let direct = flipped ? g.adjointConvolution : g, direct.runsDirect {
    return Tensor(shape: direct.outputShape) { out in
      x.withUnsafeBufferPointer { xb in
        weight.withHalves { halves in
          distill_conv2d_forward_bf16_weight(
            direct.threads, xb.baseAddress!, halves, flipped ? 1 : 0, direct.o, out.baseAddress!, direct.cGeometry,
            BF16Kernel.current.flag)
        }
      }
    }
  }
  let widened = weight.float32()
  return withComputePrecision(.bf16) { flipped ? convInputGradient(x, widened, g) : convForward(x, widened, g) }
}

/// The gradient of ``convForward(_:_:_:)`` with respect to its weight: `[o, c, kh, kw]` from the
/// input `x` and the output gradient `grad`.
func convWeightGradient(_ x: Tensor, _ grad: Tensor, _ g: ConvGeometry) -> Tensor {
  Tensor(shape: [g.o, g.c, g.kh, g.kw]) { out in
    x.withUnsafeBufferPointer { xb in
      grad.withUnsafeBufferPointer { gb in
        let op = out.baseAddress!
        if GemmKernel.isOwn {
          distill_conv2d_weight_gradient(
            g.threads, xb.baseAddress!, gb.baseAddress!, g.o, op, g.cGeometry, ComputePrecision.current.kernelFlag)
          return
        }
        if g.isPointwise {
          for s in 0..<g.n {
            sgemm(gb.baseAddress! + s * g.o * g.pixels, transposeA: false, xb.baseAddress! + s * g.c * g.pixels,
                  transposeB: true, op, m: g.o, n: g.c, k: g.pixels, beta: s == 0 ? 0 : 1)
          }
          return
        }
        g.forEachChunk { index, chunk, part, col, product in
          let beta: Float = index == 0 ? 0 : 1
          im2col(xb.baseAddress! + chunk.lowerBound * g.c * g.h * g.w, col, part)
          let gp = gb.baseAddress! + chunk.lowerBound * g.o * g.pixels
          if chunk.count == 1 {
            sgemm(gp, transposeA: false, col, transposeB: true, op, m: g.o, n: g.patch, k: g.pixels, beta: beta)
          } else {
            swapLeadingAxes(gp, product, a: part.n, b: g.o, inner: g.pixels)
            sgemm(product, transposeA: false, col, transposeB: true, op, m: g.o, n: g.patch, k: part.n * g.pixels,
                  beta: beta)
          }
        }
      }
    }
  }
}

/// Adds `bias[ch]` to every element of channel `ch` of an `[n, channels, pixels]` tensor in place.
func addChannelBias(_ y: inout Tensor, _ bias: Tensor, channels: Int) {
  let pixels = y.count / Swift.max(1, y.shape[0] * channels)
  bias.withUnsafeBufferPointer { b in
    y.withUnsafeMutableBufferPointer { out in
      let o = SendablePointer(out.baseAddress!)
      let bp = SendableConstPointer(b.baseAddress!)
      parallelFor(out.count / Swift.max(pixels, 1), cost: pixels) { range in
        for item in range {
          let v = bp.base[item % channels]
          let row = o.base + item * pixels
          for i in 0..<pixels { row[i] += v }
        }
      }
    }
  }
}

/// The bias gradient: `grad` (`[n, channels, ...]`) summed over every axis but the channel axis.
func channelSum(_ grad: Tensor, channels: Int) -> Tensor {
  let n = grad.shape[0]
  let pixels = grad.count / Swift.max(1, n * channels)
  return Tensor(shape: [channels]) { out in
    grad.withUnsafeBufferPointer { gb in
      for ch in 0..<channels {
        var total: Float = 0
        for s in 0..<n { total += sumContiguous(gb.baseAddress! + (s * channels + ch) * pixels, pixels) }
        out[ch] = total
      }
    }
  }
}

// MARK: Public API

extension Tensor {
  /// 2-D convolution as PyTorch's `F.conv2d`: `x` is `[N, C, H, W]`, `weight` is
  /// `[O, C, kh, kw]`, `bias` is `[O]`; the result is `[N, O, Ho, Wo]` with
  /// `Ho = (H + 2 * padding - kh) / stride + 1`.
  public static func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0
  ) -> Tensor {
    conv2d(x, weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding))
  }

  /// 2-D convolution with separate (height, width) strides and paddings.
  public static func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int), padding: (Int, Int)
  ) -> Tensor {
    let g = ConvGeometry(conv2d: x.shape, weight: weight, bias: bias, stride: stride, padding: padding)
    return convolutionRecorded(
      "conv2d", convForward(x, weight, g), x, weight, bias, channels: g.o,
      inputGradient: { convInputGradient($0, weight, g) }, weightGradient: { convWeightGradient(x, $0, g) })
  }

  /// `conv2d(input(inputs), weight:bias:stride:padding:)` without keeping the convolution's
  /// input for the backward pass: `input` runs without recording, and the backward pass runs it
  /// again with recording (as ``recomputing(_:parameters:_:)`` runs its body) for the weight
  /// gradient, then propagates the input gradient through it. For an `input` that is cheap to
  /// compute from tensors kept anyway (a group norm with SiLU of a block's input, a
  /// concatenation, an upsampling); the convolution itself runs once. Values and gradients are
  /// those of the direct composition to the bit, under the conditions of
  /// ``recomputing(_:parameters:_:)`` (`parameters`: the leaves `input` reads).
  public static func conv2d(
    recomputing inputs: [Tensor], parameters: [Tensor], _ input: @escaping ([Tensor]) -> Tensor,
    weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0
  ) -> Tensor {
    let recorded = (inputs + parameters + [weight] + (bias.map { [$0] } ?? [])).contains { $0.node != nil }
    guard GradientMode.isEnabled, recorded else {
      return conv2d(input(inputs), weight: weight, bias: bias, stride: stride, padding: padding)
    }
    precondition(
      parameters.allSatisfy { $0.node?.isLeaf ?? true }, "conv2d(recomputing:): parameters must be leaves")
    let values = inputs.map { $0.detached() }
    let precision = ComputePrecision.current
    let x = withoutGradients { input(values) }
    let g = ConvGeometry(
      conv2d: x.shape, weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding))
    var result = convForward(x, weight, g)
    if let bias { addChannelBias(&result, bias, channels: g.o) }
    let inputNodes = inputs.map(\.node)
    let parameterNodes = parameters.map(\.node)
    let own = [weight.node] + (bias.map { [$0.node] } ?? [])
    result.node = GradNode(operation: "conv2d(recomputing:)", inputs: inputNodes + parameterNodes + own) { grad in
      var weightGrad: Tensor? = nil
      replay(input, values, inputNodes, parameterNodes, precision) { x in
        precondition(x.shape == g.inputShape, "conv2d(recomputing:): the second run gave \(x.shape)")
        if weight.requiresGrad { weightGrad = convWeightGradient(x, grad, g) }
        return x.requiresGrad ? convInputGradient(grad, weight, g) : nil
      }
      return Array(repeating: nil, count: inputNodes.count + parameterNodes.count) + [weightGrad]
        + (bias.map { [$0.requiresGrad ? channelSum(grad, channels: g.o) : nil] } ?? [])
    }
    return result
  }


  /// 2-D transposed convolution as PyTorch's `F.conv_transpose2d`: `x` is `[N, Cin, H, W]`,
  /// `weight` is `[Cin, Cout, kh, kw]`, `bias` is `[Cout]`; the result is `[N, Cout, Ho, Wo]`
  /// with `Ho = (H - 1) * stride - 2 * padding + kh + outputPadding`.
  public static func convTranspose2d(
    _ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0, outputPadding: Int = 0
  ) -> Tensor {
    convTranspose2d(
      x, weight: weight, bias: bias, stride: (stride, stride), padding: (padding, padding),
      outputPadding: (outputPadding, outputPadding))
  }

  /// 2-D transposed convolution with separate (height, width) strides and paddings.
  public static func convTranspose2d(
    _ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: (Int, Int), padding: (Int, Int),
    outputPadding: (Int, Int) = (0, 0)
  ) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 4, "convTranspose2d needs NCHW input and [Cin, Cout, kh, kw] weight, got \(x.shape), \(weight.shape)")
    precondition(x.shape[1] == weight.shape[0], "convTranspose2d: input \(x.shape) has \(x.shape[1]) channels, weight \(weight.shape) expects \(weight.shape[0])")
    precondition(stride.0 > 0 && stride.1 > 0 && padding.0 >= 0 && padding.1 >= 0, "convTranspose2d: bad stride \(stride) or padding \(padding)")
    precondition(
      (0..<stride.0).contains(outputPadding.0) && (0..<stride.1).contains(outputPadding.1),
      "convTranspose2d: output padding \(outputPadding) must be smaller than stride \(stride)")
    let (n, cin, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (cout, kh, kw) = (weight.shape[1], weight.shape[2], weight.shape[3])
    let outH = (h - 1) * stride.0 - 2 * padding.0 + kh + outputPadding.0
    let outW = (w - 1) * stride.1 - 2 * padding.1 + kw + outputPadding.1
    precondition(outH > 0 && outW > 0, "convTranspose2d: empty output for input \(x.shape) and weight \(weight.shape)")
    if let bias { precondition(bias.shape == [cout], "convTranspose2d: bias \(bias.shape) does not fit \(cout) output channels") }
    // The convolution whose input gradient this is: input [n, cout, outH, outW], weight
    // [cin, cout, kh, kw], output [n, cin, h, w].
    let g = ConvGeometry(
      n: n, c: cout, h: outH, w: outW, o: cin, kh: kh, kw: kw, sh: stride.0, sw: stride.1, ph: padding.0,
      pw: padding.1, ho: h, wo: w)
    return convolutionRecorded(
      "convTranspose2d", convInputGradient(x, weight, g), x, weight, bias, channels: cout,
      inputGradient: { convForward($0, weight, g) }, weightGradient: { convWeightGradient($0, x, g) })
  }

  /// `result` of a convolution of `x` by `weight` plus `bias` per output channel, recorded as
  /// `name` with the gradients of `x` and `weight` given the output's, and the bias's (the
  /// output gradient summed per channel).
  private static func convolutionRecorded(
    _ name: StaticString, _ result: Tensor, _ x: Tensor, _ weight: Tensor, _ bias: Tensor?, channels: Int,
    inputGradient: @escaping (Tensor) -> Tensor, weightGradient: @escaping (Tensor) -> Tensor
  ) -> Tensor {
    var result = result
    if let bias { addChannelBias(&result, bias, channels: channels) }
    return result.recorded(name, [x, weight] + (bias.map { [$0] } ?? [])) { grad in
      [x.requiresGrad ? inputGradient(grad) : nil, weight.requiresGrad ? weightGradient(grad) : nil]
        + (bias.map { [$0.requiresGrad ? channelSum(grad, channels: channels) : nil] } ?? [])
    }
  }
}
