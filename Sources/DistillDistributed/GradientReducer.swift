import DistillCore

/// Averages the gradients of a fixed list of parameters over all ranks, bucket by bucket.
///
/// Build one per trained network (or one over all of them) after the modules exist and
/// before the first step; ``init(_:communicator:bucketBytes:)`` checks that every rank holds
/// the same names and shapes in the same order, and throws on every rank if not.
///
/// A parameter whose `grad` is `nil` on a rank counts as a zero gradient there, so the mean
/// is always the sum over ranks divided by the rank count: one process with the whole batch
/// would have the same mean. If the gradient is `nil` on every rank it stays `nil`, so
/// optimizers skip that parameter everywhere, as they would in one process. Each bucket
/// carries one presence flag per parameter to tell the two apart, at no extra call.
///
/// Not thread-safe: call from the training loop only.
public final class GradientReducer {
  public let parameters: [NamedParameter]
  public let communicator: any Communicator
  public let plan: BucketPlan
  private var staging: [Float]

  /// - Parameters:
  ///   - parameters: in the same order on every rank (`module.namedParameters()`).
  ///   - bucketBytes: the most gradient bytes reduced in one call (default 25 MiB).
  /// - Throws: ``DistributedError/layoutMismatch(detail:)`` when another rank holds a
  ///   different list; ``DistributedError/mpiCall(function:code:message:)``.
  public init(
    _ parameters: [NamedParameter], communicator: any Communicator,
    bucketBytes: Int = BucketPlan.defaultBucketBytes
  ) throws {
    self.parameters = parameters
    self.communicator = communicator
    plan = BucketPlan(counts: parameters.map(\.parameter.value.count), bucketBytes: bucketBytes)
    let flags = plan.buckets.map(\.slots.count).max() ?? 0
    staging = [Float](repeating: 0, count: communicator.size > 1 ? plan.largestBucket + flags : 0)
    try checkSameLayout()
  }

  /// Replaces each gradient with its mean over all ranks (see the type's note on `nil`).
  public func allreduceMean() throws {
    guard communicator.size > 1 else { return }
    let scale = 1 / Float(communicator.size)
    for bucket in plan.buckets {
      try staging.withUnsafeMutableBufferPointer { staging in
        let base = staging.baseAddress!
        let flags = base + bucket.count
        for (k, slot) in bucket.slots.enumerated() {
          if let grad = parameters[slot.index].parameter.grad {
            grad.withUnsafeBufferPointer { (base + slot.offset).update(from: $0.baseAddress!, count: slot.count) }
            flags[k] = 1
          } else {
            (base + slot.offset).update(repeating: 0, count: slot.count)
            flags[k] = 0
          }
        }
        try communicator.allreduceSum(UnsafeMutableBufferPointer(start: base, count: bucket.count + bucket.slots.count))
        for (k, slot) in bucket.slots.enumerated() where flags[k] > 0 {
          let parameter = parameters[slot.index].parameter
          parameter.grad = Tensor(shape: parameter.shape) { out in
            let source = base + slot.offset
            for i in 0..<slot.count { out[i] = source[i] * scale }
          }
        }
      }
    }
  }

  /// Copies rank `root`'s parameter values to every other rank, so all start identical.
  public func broadcastValues(from root: Int = 0) throws {
    guard communicator.size > 1 else { return }
    for bucket in plan.buckets {
      try staging.withUnsafeMutableBufferPointer { staging in
        let base = staging.baseAddress!
        if communicator.rank == root {
          for slot in bucket.slots {
            parameters[slot.index].parameter.value.withUnsafeBufferPointer {
              (base + slot.offset).update(from: $0.baseAddress!, count: slot.count)
            }
          }
        }
        try communicator.broadcast(
          UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(start: base, count: bucket.count)), from: root)
        if communicator.rank != root {
          for slot in bucket.slots {
            let parameter = parameters[slot.index].parameter
            parameter.assign(Tensor(shape: parameter.shape) { $0.baseAddress!.update(from: base + slot.offset, count: slot.count) })
          }
        }
      }
    }
  }

  /// Compares a fingerprint of the names and shapes with rank 0's; all ranks learn the verdict.
  private func checkSameLayout() throws {
    guard communicator.size > 1 else { return }
    let local = fingerprint()
    var reference = local
    try withUnsafeMutableBytes(of: &reference) { try communicator.broadcast($0, from: 0) }
    let differing = try communicator.allreduceSum([reference == local ? 0 : 1])[0]
    if differing > 0 {
      throw DistributedError.layoutMismatch(
        detail: "\(Int(differing)) of \(communicator.size) ranks differ from rank 0 in parameter names, shapes or "
          + "order (this rank: \(parameters.count) parameters, \(plan.buckets.reduce(0) { $0 + $1.count }) floats, "
          + "\(local == reference ? "same as" : "differs from") rank 0); build the modules identically on every rank")
    }
  }

  /// FNV-1a over every name and shape, with the parameter count beside it.
  private func fingerprint() -> SIMD2<UInt64> {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    func mix(_ byte: UInt8) { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
    for entry in parameters {
      for byte in entry.name.utf8 { mix(byte) }
      mix(0)
      for dimension in entry.parameter.shape {
        withUnsafeBytes(of: UInt64(dimension).littleEndian) { for byte in $0 { mix(byte) } }
      }
      mix(0xff)
    }
    return SIMD2(hash, UInt64(parameters.count))
  }
}
