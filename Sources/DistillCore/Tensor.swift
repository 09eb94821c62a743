/// An n-dimensional array of `Float` with value semantics and optional gradient tracking.
///
/// Storage is contiguous, row-major and shared copy-on-write: copying a `Tensor` is cheap,
/// and mutating one copy never changes another. Every operation returns a new tensor; when
/// an input requires gradients (and gradient recording is on, see ``withoutGradients(_:)``),
/// the result records how to propagate a gradient back, and ``backward()`` does so.
///
/// ```swift
/// var w = Tensor([1, 2, 3]).requiringGrad()
/// let loss = (w * w).sum()
/// loss.backward()
/// w.grad  // [2, 4, 6]
/// ```
public struct Tensor: @unchecked Sendable {
  /// The extent of each dimension; `[]` for a scalar.
  public internal(set) var shape: [Int]
  @usableFromInline var storage: TensorStorage
  /// The autograd node: `nil` for a tensor that does not take part in differentiation.
  @usableFromInline var node: GradNode?

  @usableFromInline
  init(shape: [Int], storage: TensorStorage, node: GradNode? = nil) {
    assert(shape.reduce(1, *) == storage.count, "shape \(shape) does not fit \(storage.count) elements")
    self.shape = shape
    self.storage = storage
    self.node = node
  }

  /// A tensor of `shape` holding `scalars` in row-major order.
  public init(shape: [Int], scalars: [Float]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    precondition(
      shape.reduce(1, *) == scalars.count,
      "shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
    let storage = TensorStorage(uninitializedCount: scalars.count)
    scalars.withUnsafeBufferPointer { storage.pointer.initialize(from: $0.baseAddress!, count: scalars.count) }
    self.init(shape: shape, storage: storage)
  }

  /// A 1-D tensor of `scalars`.
  public init(_ scalars: [Float]) { self.init(shape: [scalars.count], scalars: scalars) }

  /// A 2-D tensor from rows of equal length.
  public init(_ rows: [[Float]]) {
    let columns = rows.first?.count ?? 0
    precondition(rows.allSatisfy { $0.count == columns }, "rows of unequal length")
    self.init(shape: [rows.count, columns], scalars: rows.flatMap { $0 })
  }

  /// A 0-D tensor holding `value`.
  public init(scalar value: Float) { self.init(shape: [], storage: TensorStorage(repeating: value, count: 1)) }

  /// A tensor of `shape` whose elements are filled by `body` through an uninitialised buffer.
  @inlinable
  public init(shape: [Int], unsafeUninitializedScalars body: (UnsafeMutableBufferPointer<Float>) throws -> Void)
    rethrows
  {
    let storage = TensorStorage(uninitializedCount: shape.reduce(1, *))
    try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    self.init(shape: shape, storage: storage)
  }

  // MARK: Creation

  /// A tensor of `shape` filled with `value`.
  public static func full(_ shape: [Int], _ value: Float) -> Tensor {
    Tensor(shape: shape, storage: TensorStorage(repeating: value, count: shape.reduce(1, *)))
  }

  public static func zeros(_ shape: [Int]) -> Tensor { full(shape, 0) }
  public static func ones(_ shape: [Int]) -> Tensor { full(shape, 1) }

  /// A tensor of the same shape as `other` filled with `value`.
  public static func full(like other: Tensor, _ value: Float) -> Tensor { full(other.shape, value) }

  /// `[start, start + step, ...]` up to but excluding `end`.
  public static func arange(_ start: Float = 0, _ end: Float, step: Float = 1) -> Tensor {
    precondition(step != 0, "arange step must not be zero")
    let count = Swift.max(0, Int(((end - start) / step).rounded(.up)))
    return Tensor(shape: [count]) { buffer in
      for i in 0..<count { buffer[i] = start + Float(i) * step }
    }
  }

  // MARK: Properties

  public var rank: Int { shape.count }
  /// The number of elements.
  public var count: Int { storage.count }

  /// The elements in row-major order (a bfloat16 tensor's widened to float).
  public var scalars: [Float] {
    if storage.isBFloat16 { return float32().scalars }
    return Array(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
  }

  /// The single element of a tensor with one element.
  public var item: Float {
    precondition(count == 1, "item needs a tensor with one element, shape is \(shape)")
    return scalars[0]
  }

  /// Reads the elements without copying. A bfloat16 tensor (``isBFloat16``) has no float
  /// elements to read: only products take it (``float32()`` widens it).
  @inlinable
  public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
    precondition(!storage.isBFloat16, "a bfloat16 tensor \(shape) is a product weight only: widen it with float32()")
    return try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
  }

  /// Writes the elements in place, copying the storage first if another tensor shares it.
  ///
  /// The write is not recorded for autodiff: use it for optimizer updates and I/O.
  @inlinable
  public mutating func withUnsafeMutableBufferPointer<R>(
    _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
  ) rethrows -> R {
    precondition(!storage.isBFloat16, "a bfloat16 tensor \(shape) is a frozen product weight: it is not written")
    if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
  }

  /// Whether the two tensors share one storage buffer (a test and debugging aid).
  public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }
}

extension Tensor: CustomStringConvertible {
  public var description: String {
    let shown = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
    return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
  }
}

extension Tensor: Equatable {
  /// Equal shapes and equal elements; gradient state is not compared.
  public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
    lhs.shape == rhs.shape
      && (lhs.storage === rhs.storage || (lhs.isBFloat16 == rhs.isBFloat16 && lhs.scalars == rhs.scalars))
  }
}
