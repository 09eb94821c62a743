import DistillTestSupport
import Synchronization
import Testing

#if canImport(Accelerate)
  import Accelerate
#else
  import CBLAS
#endif

@testable import DistillCore

/// The matrix product under every op (`sgemm`: CKernels' AVX-512 kernel where the CPU has it,
/// BLAS elsewhere) against a product in Double, over shapes that hit each edge of its blocking:
/// partial 8-row strips and 32-column panels, depths past one 256-deep block, more than 128
/// rows and 1024 columns, the transposed route for two-column results, and products large
/// enough to be split across threads.
@Suite struct GemmTests {
  static let shapes: [(m: Int, n: Int, k: Int)] = [
    (1, 1, 1), (3, 5, 7), (8, 32, 8), (9, 33, 257), (17, 2, 100), (512, 2, 18), (2, 128, 70),
    (130, 70, 300), (40, 1030, 30), (300, 64, 60), (64, 96, 520),
  ]

  /// `alpha * op(a) op(b) + beta * c` in Double, rounded to Float.
  static func reference(
    _ a: [Float], transposeA: Bool, _ b: [Float], transposeB: Bool, _ c: [Float], m: Int, n: Int, k: Int,
    alpha: Float, beta: Float
  ) -> [Float] {
    var out = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
      for j in 0..<n {
        var total = 0.0
        for p in 0..<k {
          let x = transposeA ? a[p * m + i] : a[i * k + p]
          let y = transposeB ? b[j * k + p] : b[p * n + j]
          total += Double(x) * Double(y)
        }
        out[i * n + j] = Float(Double(alpha) * total + (beta == 0 ? 0 : Double(beta) * Double(c[i * n + j])))
      }
    }
    return out
  }

  @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
  func productMatchesDouble(transposeA: Bool, transposeB: Bool) {
    for (index, (m, n, k)) in Self.shapes.enumerated() {
      let a = testTensor([m * k], seed: UInt64(3 * index + 1)).scalars
      let b = testTensor([k * n], seed: UInt64(3 * index + 2)).scalars
      let c = testTensor([m * n], seed: UInt64(3 * index + 3)).scalars
      for (alpha, beta) in [(Float(1), Float(0)), (1, 1), (0.5, -2)] {
        var out = beta == 0 ? [Float](repeating: .nan, count: m * n) : c  // beta 0 must not read c
        out.withUnsafeMutableBufferPointer { o in
          sgemm(a, transposeA: transposeA, b, transposeB: transposeB, o.baseAddress!, m: m, n: n, k: k, alpha: alpha, beta: beta)
        }
        let expected = Self.reference(a, transposeA: transposeA, b, transposeB: transposeB, c, m: m, n: n, k: k, alpha: alpha, beta: beta)
        // Each product sums k terms of magnitude below 1.
        let tolerance = 2e-6 * Float(k).squareRoot() * 4
        expectClose(out, expected, rtol: 1e-5, atol: tolerance, "\(m)x\(n)x\(k) alpha \(alpha) beta \(beta)")
      }
    }
  }

  @Test func singleAndThreadedProductsAgreeExactly() {
    // The split runs the same kernel on column panels or row strips: same sums, same order.
    for (m, n, k) in [(64, 1030, 40), (600, 40, 64)] {
      let a = testTensor([m * k], seed: 7).scalars
      let b = testTensor([k * n], seed: 8).scalars
      var single = [Float](repeating: 0, count: m * n)
      var threaded = single
      single.withUnsafeMutableBufferPointer {
        sgemm(a, transposeA: false, b, transposeB: false, $0.baseAddress!, m: m, n: n, k: k, threaded: false)
      }
      threaded.withUnsafeMutableBufferPointer {
        sgemm(a, transposeA: false, b, transposeB: false, $0.baseAddress!, m: m, n: n, k: k, threaded: true)
      }
      #expect(single == threaded)
    }
  }
}

extension GemmTests {
  /// Products whose shared packed operand would pass 4M floats run as segments of their depth
  /// (gemm.c, WHOLE_LIMIT), each accumulated onto C: a wide one (A packed, 64 rows by 70000)
  /// and a tall one (B packed, 2100 by 2048 columns), against BLAS.
  @Test(arguments: [(64, 96, 70_000, false, false), (64, 96, 70_000, true, true), (2048, 2048, 2100, false, true)])
  func longProductsRunInSegments(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool) {
    let a = testTensor([m * k], seed: 41).scalars
    let b = testTensor([k * n], seed: 42).scalars
    let c = testTensor([m * n], seed: 43).scalars
    var ours = c
    ours.withUnsafeMutableBufferPointer {
      sgemm(a, transposeA: transposeA, b, transposeB: transposeB, $0.baseAddress!, m: m, n: n, k: k, alpha: 0.5, beta: 2)
    }
    var reference = c
    cblas_sgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
      Int32(k), 0.5, a, Int32(transposeA ? m : k), b, Int32(transposeB ? k : n), 2, &reference, Int32(n))
    expectClose(ours, reference, rtol: 1e-4, atol: 2e-5 * Float(k).squareRoot() * 4)
  }
}

/// The worker pool behind `parallelFor` (CKernels threads.c): every index runs once, also when
/// loops nest or several threads start loops at once (the later ones run inline).
@Suite struct ParallelLoopTests {
  @Test func everyIndexRunsOnce() {
    for count in [1, 2, 3, 1000, 1 << 18] {
      var hits = [Int32](repeating: 0, count: count)
      hits.withUnsafeMutableBufferPointer { buffer in
        let h = SendablePointer(buffer.baseAddress!)
        parallelFor(count, cost: 1 << 17) { range in
          for i in range { h.base[i] += 1 }
        }
      }
      #expect(hits.allSatisfy { $0 == 1 }, "count \(count)")
    }
  }

  final class Counter: Sendable {
    let value = Atomic<Int>(0)
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
  }

  @Test func nestedAndConcurrentLoops() async {
    let total = Counter()
    await withTaskGroup(of: Void.self) { group in
      for _ in 0..<8 {
        group.addTask {
          for _ in 0..<50 {
            parallelFor(4, cost: 1 << 17) { outer in
              for _ in outer {
                parallelFor(8, cost: 1 << 17) { inner in total.add(inner.count) }
              }
            }
          }
        }
      }
    }
    #expect(total.value.load(ordering: .relaxed) == 8 * 50 * 4 * 8)
  }
}
