import CImageSupport
import DistillCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An array in the IDX format of the MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST):
/// two zero bytes, a type byte, the number of dimensions, each dimension as a big-endian
/// 32-bit count, then the values in row-major order, big-endian. Files may be gzip-compressed,
/// as the data sets are shipped.
public struct IDXArray: Sendable {
  /// The element types of the format, by their type byte.
  public enum ElementType: UInt8, Sendable {
    case unsignedByte = 0x08, signedByte = 0x09, short = 0x0B, int = 0x0C, float = 0x0D, double = 0x0E

    var size: Int {
      switch self {
      case .unsignedByte, .signedByte: return 1
      case .short: return 2
      case .int, .float: return 4
      case .double: return 8
      }
    }
  }

  public let shape: [Int]
  public let elementType: ElementType
  /// The values as stored (bytes 0...255 for `unsignedByte`).
  public let values: [Float]

  /// Reads `path` (gzip or plain).
  ///
  /// - Throws: ``DistillError/io(path:reason:)`` when it cannot be read and
  ///   ``DistillError/malformed(path:detail:)`` naming what is wrong: the magic, the type byte,
  ///   a size that does not match the dimensions.
  public static func read(_ path: String) throws -> IDXArray {
    var message = [CChar](repeating: 0, count: 256)
    var buffer: UnsafeMutablePointer<UInt8>?
    var length = 0
    let status = distill_read_maybe_gzip(path, &buffer, &length, &message, message.count)
    guard status == 0, let buffer else {
      let reason = String(cString: message)
      throw status == Int32(DISTILL_IMAGE_IO_ERROR)
        ? DistillError.io(path: path, reason: reason) : DistillError.malformed(path: path, detail: reason)
    }
    defer { free(buffer) }
    return try parse(UnsafeBufferPointer(start: buffer, count: length), path: path)
  }

  /// Parses the bytes of an uncompressed IDX file; `path` names it in errors.
  public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, path: String) throws -> IDXArray {
    func bad(_ detail: String) -> DistillError { .malformed(path: path, detail: "not an IDX file: \(detail)") }
    guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else { throw bad("it does not start with two zero bytes") }
    guard let type = ElementType(rawValue: bytes[2]) else {
      throw bad("unknown element type 0x\(String(bytes[2], radix: 16))")
    }
    let rank = Int(bytes[3])
    guard rank >= 1, bytes.count >= 4 + 4 * rank else { throw bad("\(rank) dimensions in a file of \(bytes.count) bytes") }
    func word(_ offset: Int) -> UInt32 {
      (0..<4).reduce(0) { $0 << 8 | UInt32(bytes[offset + $1]) }
    }
    let shape = (0..<rank).map { Int(word(4 + 4 * $0)) }
    let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
    let start = 4 + 4 * rank
    guard shape.allSatisfy({ $0 > 0 && $0 < 1 << 31 }), bytes.count - start == count * type.size else {
      throw bad("dimensions \(shape) of \(type.size)-byte values need \(count * type.size) bytes, the file holds \(bytes.count - start)")
    }
    let values: [Float] = (0..<count).map { i in
      let offset = start + i * type.size
      switch type {
      case .unsignedByte: return Float(bytes[offset])
      case .signedByte: return Float(Int8(bitPattern: bytes[offset]))
      case .short: return Float(Int16(bitPattern: UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])))
      case .int: return Float(Int32(bitPattern: word(offset)))
      case .float: return Float(bitPattern: word(offset))
      case .double:
        return Float(Double(bitPattern: UInt64(word(offset)) << 32 | UInt64(word(offset + 4))))
      }
    }
    return IDXArray(shape: shape, elementType: type, values: values)
  }
}
