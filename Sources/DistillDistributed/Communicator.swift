import DistillCore

/// The processes of a data-parallel job and the collectives they run together.
///
/// Every rank must call the collectives (`allreduceSum`, `broadcast`,
/// ``barrier()``) in the same order with the same sizes: they block until all ranks reach
/// them. Get one with ``communicatorFromEnvironment(_:libraries:)``; a ``SingleProcessCommunicator`` makes every
/// collective a no-op, so a trainer calls the same code for 1 or N ranks.
///
/// ```swift
/// let communicator = try communicatorFromEnvironment()
/// let reducer = try GradientReducer(model.namedParameters(), communicator: communicator)
/// try reducer.broadcastValues()          // every rank starts from rank 0's weights
/// // ... backward on this rank's share of the batch ...
/// try reducer.allreduceMean()            // gradients are now the mean over ranks
/// optimizer.step()
/// ```
public protocol Communicator: AnyObject, Sendable {
  /// This process's index, `0..<size`.
  var rank: Int { get }
  /// The number of processes in the job.
  var size: Int { get }
  /// One line for logs: the backend and library version.
  var backend: String { get }

  /// Replaces every element of `buffer` with its sum over all ranks (same count everywhere).
  func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
  /// Replaces every element of `buffer` with its sum over all ranks (same count everywhere).
  func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
  /// Copies rank `root`'s bytes into `buffer` on every other rank (same count everywhere).
  func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) throws
  /// Returns once every rank has called it.
  func barrier() throws
  /// Ends the communicator (MPI_Finalize) on a successful exit; collective. Later calls do
  /// nothing. A process that exits normally without calling it is finalised by an exit
  /// handler.
  func finalize() throws
  /// Ends every rank of the job with `exitCode` (MPI_Abort): the call for a rank that fails,
  /// since the others would otherwise wait forever in their next collective.
  func abort(exitCode: Int32) -> Never
}

extension Communicator {
  /// Whether this is rank 0, the one that writes checkpoints, logs and grids.
  public var isMain: Bool { rank == 0 }

  /// The sums over all ranks of `values` (a few scalars: losses, counts for logging).
  public func allreduceSum(_ values: [Double]) throws -> [Double] {
    var result = values
    try result.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    return result
  }

  /// The means over all ranks of `values`.
  public func allreduceMean(_ values: [Double]) throws -> [Double] {
    let scale = 1 / Double(size)
    return try allreduceSum(values).map { $0 * scale }
  }

  /// Rank `root`'s `values` on every rank (every rank passes the same count).
  public func broadcast(_ values: inout [Float], from root: Int = 0) throws {
    try values.withUnsafeMutableBytes { try broadcast($0, from: root) }
  }

  /// Rank `root`'s bytes on every rank; the count may differ across ranks (it is sent first).
  public func broadcast(_ bytes: [UInt8], from root: Int = 0) throws -> [UInt8] {
    guard size > 1 else { return bytes }
    var count = [UInt64(bytes.count)]
    try count.withUnsafeMutableBytes { try broadcast($0, from: root) }
    var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(count[0]))
    try result.withUnsafeMutableBytes { try broadcast($0, from: root) }
    return result
  }

  /// Rank `root`'s values in `tensor` on every rank (every rank passes the same shape).
  public func broadcast(_ tensor: inout Tensor, from root: Int = 0) throws {
    guard size > 1 else { return }
    try tensor.withUnsafeMutableBufferPointer { try broadcast(UnsafeMutableRawBufferPointer($0), from: root) }
  }

  /// Replaces each tensor with its mean over all ranks, in buckets of at most `bucketBytes`
  /// (every rank passes the same shapes in the same order).
  public func allreduceMean(_ tensors: inout [Tensor], bucketBytes: Int = BucketPlan.defaultBucketBytes) throws {
    guard size > 1 else { return }
    let plan = BucketPlan(counts: tensors.map(\.count), bucketBytes: bucketBytes)
    var buffer = [Float](repeating: 0, count: plan.largestBucket)
    let scale = 1 / Float(size)
    for bucket in plan.buckets {
      try buffer.withUnsafeMutableBufferPointer { staging in
        let base = staging.baseAddress!
        for slot in bucket.slots {
          tensors[slot.index].withUnsafeBufferPointer { (base + slot.offset).update(from: $0.baseAddress!, count: slot.count) }
        }
        try allreduceSum(UnsafeMutableBufferPointer(start: base, count: bucket.count))
        for slot in bucket.slots {
          tensors[slot.index] = Tensor(shape: tensors[slot.index].shape) { out in
            let source = base + slot.offset
            for i in 0..<slot.count { out[i] = source[i] * scale }
          }
        }
      }
    }
  }
}
