import Foundation

@testable import DistillDistributed

/// `size` ranks as threads of this process, for testing code written against `Communicator`
/// without MPI. Sums run in rank order, so every rank gets bitwise the same result.
final class InProcessWorld: @unchecked Sendable {
  let size: Int
  private let condition = NSCondition()
  private var arrived = 0
  private var generation = 0
  private var slots: [[UInt8]]

  init(size: Int) {
    self.size = size
    slots = Array(repeating: [], count: size)
  }

  /// Runs `body` once per rank, each on its own thread, and returns the results by rank.
  func run<R: Sendable>(_ body: @escaping @Sendable (any Communicator) throws -> R) throws -> [R] {
    let results = ResultBox<R>(size: size)
    let threads = (0..<size).map { rank in
      Thread { results.set(rank, Result { try body(Rank(world: self, rank: rank)) }) }
    }
    threads.forEach { $0.start() }
    return try results.wait().map { try $0.get() }
  }

  fileprivate func barrier() {
    condition.lock()
    defer { condition.unlock() }
    let mine = generation
    arrived += 1
    if arrived == size {
      arrived = 0
      generation += 1
      condition.broadcast()
    } else {
      while generation == mine { condition.wait() }
    }
  }

  fileprivate func deposit(_ rank: Int, _ bytes: UnsafeRawBufferPointer) {
    condition.lock()
    slots[rank] = Array(bytes)
    condition.unlock()
  }

  fileprivate func slot(_ rank: Int) -> [UInt8] {
    condition.lock()
    defer { condition.unlock() }
    return slots[rank]
  }

  private final class Rank: Communicator, @unchecked Sendable {
    let world: InProcessWorld
    let rank: Int
    var size: Int { world.size }
    let backend = "in-process threads"

    init(world: InProcessWorld, rank: Int) {
      self.world = world
      self.rank = rank
    }

    private func sum<T: FloatingPoint>(_ buffer: UnsafeMutableBufferPointer<T>) {
      world.deposit(rank, UnsafeRawBufferPointer(buffer))
      world.barrier()
      for i in buffer.indices { buffer[i] = 0 }
      for other in 0..<size {
        world.slot(other).withUnsafeBytes { raw in
          let values = raw.bindMemory(to: T.self)
          for i in buffer.indices { buffer[i] += values[i] }
        }
      }
      world.barrier()
    }

    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { sum(buffer) }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws { sum(buffer) }

    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) throws {
      if rank == root { world.deposit(rank, UnsafeRawBufferPointer(buffer)) }
      world.barrier()
      if rank != root { world.slot(root).withUnsafeBytes { buffer.copyMemory(from: $0) } }
      world.barrier()
    }

    func barrier() throws { world.barrier() }
    func finalize() throws {}
    func abort(exitCode: Int32) -> Never { fatalError("rank \(rank) aborted with \(exitCode)") }
  }
}

private final class ResultBox<R>: @unchecked Sendable {
  private let condition = NSCondition()
  private var results: [Result<R, any Error>?]

  init(size: Int) { results = Array(repeating: nil, count: size) }

  func set(_ rank: Int, _ result: Result<R, any Error>) {
    condition.lock()
    results[rank] = result
    condition.broadcast()
    condition.unlock()
  }

  func wait() -> [Result<R, any Error>] {
    condition.lock()
    defer { condition.unlock() }
    while results.contains(where: { $0 == nil }) { condition.wait() }
    return results.map { $0! }
  }
}
