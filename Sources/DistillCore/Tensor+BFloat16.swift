import CKernels

/// How a network holds the weights of its products and convolutions.
///
/// `fp32`: float32, as every other tensor. `bf16`: bfloat16 (rounded to nearest even), half
/// the bytes, for a frozen network only (a teacher, a real score): the products that read such
/// a weight run on the bfloat16 kernels (``ComputePrecision/bf16``: the other operand rounded
/// to bfloat16 too, float32 accumulation and result), while biases, norms, embeddings and
/// everything else stay float32. See ``Module/holdProductWeights(in:)``.
public enum WeightFormat: String, Sendable, CaseIterable {
  case fp32, bf16

  /// Whether weights in this format can be used here: `bf16` products need AVX512-BF16 and
  /// Distillery's kernel (``ComputePrecision/bf16Supported``).
  public var isSupported: Bool { self == .fp32 || ComputePrecision.bf16Supported }

  /// The format product weights are made in inside the enclosing
  /// ``withProductWeights(_:_:)`` scope, `fp32` outside any.
  @TaskLocal public static var construction: WeightFormat = .fp32
}

/// Runs `body` with every product weight made in it (a ``Parameter`` with
/// ``Parameter/isProductWeight``) held in `format` from the start: a frozen network built
/// inside `withProductWeights(.bf16) { }` never holds its float32 weights all at once (each is
/// drawn and rounded in turn), and equals the same network built outside and then converted
/// with ``Module/holdProductWeights(in:)``. Traps where `format` is not supported
/// (``WeightFormat/isSupported``).
public func withProductWeights<R>(_ format: WeightFormat, _ body: () throws -> R) rethrows -> R {
  precondition(format.isSupported, "bf16 weights need a CPU with AVX512-BF16 and Distillery's kernel")
  return try WeightFormat.$construction.withValue(format, operation: body)
}

extension Tensor {
  /// Whether this tensor holds bfloat16 values: a frozen product weight
  /// (``bfloat16Rounded()``), which only ``linear(_:weight:bias:)``, ``conv2d(_:weight:bias:stride:padding:)``
  /// and ``convTranspose2d(_:weight:bias:stride:padding:outputPadding:)`` take as their weight.
  public var isBFloat16: Bool { storage.isBFloat16 }

  /// The bytes this tensor's elements take: 4 per element, 2 for a bfloat16 tensor.
  public var storageBytes: Int { storage.elementBytes }

  /// This tensor rounded to bfloat16 (to nearest even, as `vcvtneps2bf16`: subnormals become
  /// zeros, as in the bf16 products) and held in 2 bytes per element,
  /// detached: a frozen weight for the products (``isBFloat16``). A bfloat16 tensor is
  /// returned as it is.
  public func bfloat16Rounded() -> Tensor {
    if storage.isBFloat16 { return detached() }
    let result = TensorStorage(uninitializedCount: count, bfloat16: true)
    withUnsafeBufferPointer { distill_bf16_round($0.baseAddress!, result.halves, count) }
    return Tensor(shape: shape, storage: result)
  }

  /// This tensor in float32: a bfloat16 tensor widened (exactly), a float32 one as it is.
  public func float32() -> Tensor {
    guard storage.isBFloat16 else { return self }
    let result = TensorStorage(uninitializedCount: count)
    distill_bf16_widen(storage.halves, result.pointer, count)
    return Tensor(shape: shape, storage: result)
  }

  /// Calls `body` with the bfloat16 values of a bfloat16 tensor.
  func withHalves<R>(_ body: (UnsafePointer<UInt16>) throws -> R) rethrows -> R {
    precondition(storage.isBFloat16, "withHalves needs a bfloat16 tensor")
    return try withExtendedLifetime(storage) { try body(storage.halves) }
  }
}

/// Runs `body` with the products in bfloat16 when `weight` is held in bfloat16 (the products
/// of a frozen bfloat16 weight always are), in the enclosing precision otherwise.
func withWeightPrecision<R>(_ weight: Tensor, _ body: () -> R) -> R {
  guard weight.isBFloat16, ComputePrecision.current != .bf16 else { return body() }
  return withComputePrecision(.bf16, body)
}
