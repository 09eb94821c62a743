/// The communicator of a job with one process: every collective returns at once, leaving its
/// buffer as it is (the sum and mean over one rank are the values themselves).
public final class SingleProcessCommunicator: Communicator {
  public let rank = 0
  public let size = 1
  public let backend = "single process"

  public init() {}

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
  public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, from root: Int) throws {
    precondition(root == 0, "broadcast from rank \(root) in a job of one process")
  }
  public func barrier() throws {}
  public func finalize() throws {}
  public func abort(exitCode: Int32) -> Never { exit(exitCode) }
}

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
