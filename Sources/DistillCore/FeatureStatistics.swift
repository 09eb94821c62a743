#if canImport(Accelerate)
  import Accelerate
#else
  import CBLAS
#endif

/// Distribution distances on feature vectors (rows of `[N, D]` matrices, in Double): the
/// Fréchet distance of Gaussian fits, the kernel inception distance's unbiased MMD², and
/// k-nearest-neighbour precision and recall. The names say what is measured; the caller
/// names the features (`FD_pixels`, not FID).
public enum FeatureStatistics {
  /// The mean and the unbiased covariance (`[D, D]`, row-major) of the rows of `x` (`n` rows
  /// of `d` values).
  public static func meanAndCovariance(_ x: [Double], rows n: Int, columns d: Int) -> (mean: [Double], covariance: [Double]) {
    precondition(n >= 2 && x.count == n * d, "need at least 2 rows of \(d) values")
    var mean = [Double](repeating: 0, count: d)
    for i in 0..<n { for j in 0..<d { mean[j] += x[i * d + j] } }
    for j in 0..<d { mean[j] /= Double(n) }
    var centred = x
    for i in 0..<n { for j in 0..<d { centred[i * d + j] -= mean[j] } }
    var covariance = [Double](repeating: 0, count: d * d)
    // covariance = centred^T centred / (n - 1)
    cblas_dgemm(
      CblasRowMajor, CblasTrans, CblasNoTrans, Int32(d), Int32(d), Int32(n), 1 / Double(n - 1), centred, Int32(d),
      centred, Int32(d), 0, &covariance, Int32(d))
    return (mean, covariance)
  }

  /// The eigenvalues (ascending) and, when `vectors`, the eigenvectors (columns of a
  /// column-major `[D, D]`, i.e. rows of the returned row-major array) of the symmetric `a`.
  public static func symmetricEigen(_ a: [Double], size d: Int, vectors: Bool) -> (values: [Double], vectors: [Double]) {
    var matrix = a
    var values = [Double](repeating: 0, count: d)
    var n = Int32(d)
    var lda = Int32(d)
    var info: Int32 = 0
    var jobz: CChar = vectors ? 86 : 78  // "V" or "N"
    var uplo: CChar = 85  // "U"
    var workSize: Double = 0
    var iworkSize: Int32 = 0
    var query: Int32 = -1
    dsyevd_(&jobz, &uplo, &n, &matrix, &lda, &values, &workSize, &query, &iworkSize, &query, &info)
    var lwork = Int32(workSize)
    var liwork = iworkSize
    var work = [Double](repeating: 0, count: Int(lwork))
    var iwork = [Int32](repeating: 0, count: Int(liwork))
    dsyevd_(&jobz, &uplo, &n, &matrix, &lda, &values, &work, &lwork, &iwork, &liwork, &info)
    precondition(info == 0, "dsyevd failed with info \(info)")
    return (values, matrix)
  }

  /// `trace(sqrtm(a b))` for symmetric positive semi-definite `a` and `b`: with `r = sqrtm(a)`,
  /// the eigenvalues of the symmetric `r b r` are those of `a b`.
  public static func traceSqrtProduct(_ a: [Double], _ b: [Double], size d: Int) -> Double {
    let (values, vectors) = symmetricEigen(a, size: d, vectors: true)
    // vectors is column-major V (column k = eigenvector k); sqrt(a) = V diag(sqrt λ) V^T.
    var scaled = vectors
    for k in 0..<d {
      let s = max(values[k], 0).squareRoot()
      for i in 0..<d { scaled[k * d + i] *= s }
    }
    var root = [Double](repeating: 0, count: d * d)
    // In column-major terms root = scaled * V^T; symmetric, so the layout does not matter.
    cblas_dgemm(
      CblasColMajor, CblasNoTrans, CblasTrans, Int32(d), Int32(d), Int32(d), 1, scaled, Int32(d), vectors, Int32(d), 0,
      &root, Int32(d))
    var rb = [Double](repeating: 0, count: d * d)
    cblas_dgemm(
      CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(d), Int32(d), Int32(d), 1, root, Int32(d), b, Int32(d), 0, &rb,
      Int32(d))
    var rbr = [Double](repeating: 0, count: d * d)
    cblas_dgemm(
      CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(d), Int32(d), Int32(d), 1, rb, Int32(d), root, Int32(d), 0, &rbr,
      Int32(d))
    // Symmetrise against rounding before the eigenvalues.
    for i in 0..<d {
      for j in (i + 1)..<d {
        let m = (rbr[i * d + j] + rbr[j * d + i]) / 2
        rbr[i * d + j] = m
        rbr[j * d + i] = m
      }
    }
    return symmetricEigen(rbr, size: d, vectors: false).values.reduce(0) { $0 + max($1, 0).squareRoot() }
  }

  /// The Fréchet distance between Gaussian fits of `x` and `y`:
  /// `|μx − μy|² + tr(Σx) + tr(Σy) − 2 tr(sqrtm(Σx Σy))`.
  public static func frechetDistance(_ x: [Double], rows n: Int, _ y: [Double], rows m: Int, columns d: Int) -> Double {
    let (mx, cx) = meanAndCovariance(x, rows: n, columns: d)
    let (my, cy) = meanAndCovariance(y, rows: m, columns: d)
    var distance = 0.0
    for j in 0..<d { distance += (mx[j] - my[j]) * (mx[j] - my[j]) + cx[j * d + j] + cy[j * d + j] }
    return distance - 2 * traceSqrtProduct(cx, cy, size: d)
  }

  /// The unbiased MMD² with the cubic polynomial kernel `k(a, b) = (a·b / d + 1)³` (the
  /// kernel inception distance's, on whatever features are given).
  public static func kernelDistance(_ x: [Double], rows n: Int, _ y: [Double], rows m: Int, columns d: Int) -> Double {
    precondition(n >= 2 && m >= 2)
    func gram(_ a: [Double], _ p: Int, _ b: [Double], _ q: Int) -> [Double] {
      var g = [Double](repeating: 0, count: p * q)
      cblas_dgemm(
        CblasRowMajor, CblasNoTrans, CblasTrans, Int32(p), Int32(q), Int32(d), 1 / Double(d), a, Int32(d), b, Int32(d),
        0, &g, Int32(q))
      return g.map { ($0 + 1) * ($0 + 1) * ($0 + 1) }
    }
    let kxx = gram(x, n, x, n)
    let kyy = gram(y, m, y, m)
    let kxy = gram(x, n, y, m)
    var sxx = 0.0
    var syy = 0.0
    for i in 0..<n { for j in 0..<n where i != j { sxx += kxx[i * n + j] } }
    for i in 0..<m { for j in 0..<m where i != j { syy += kyy[i * m + j] } }
    let sxy = kxy.reduce(0, +)
    return sxx / Double(n * (n - 1)) + syy / Double(m * (m - 1)) - 2 * sxy / Double(n * m)
  }

  /// k-NN precision and recall (Kynkäänniemi et al. 2019): the fraction of generated rows
  /// inside some real row's ball reaching its k-th nearest real neighbour, and the fraction
  /// of real rows inside some generated row's ball likewise.
  public static func precisionRecall(
    real: [Double], rows n: Int, generated: [Double], rows m: Int, columns d: Int, k: Int
  ) -> (precision: Double, recall: Double) {
    precondition(k >= 1 && k < min(n, m), "k = \(k) needs more than k rows on each side")
    func coverage(_ balls: [Double], _ centres: Int, _ cross: [Double], points: Int) -> Double {
      // cross[c * points + j]: squared distance of centre c to point j.
      var inside = 0
      for j in 0..<points where (0..<centres).contains(where: { cross[$0 * points + j] <= balls[$0] }) { inside += 1 }
      return Double(inside) / Double(points)
    }
    let realRadii = radii(real, n, columns: d, k: k)
    let generatedRadii = radii(generated, m, columns: d, k: k)
    let realToGenerated = squaredDistances(real, n, generated, m, columns: d)
    let generatedToReal = squaredDistances(generated, m, real, n, columns: d)
    return (
      coverage(realRadii, n, realToGenerated, points: m), coverage(generatedRadii, m, generatedToReal, points: n)
    )
  }

  /// Density and coverage (Naeem et al. 2020), on the real rows' balls reaching their k-th
  /// nearest real neighbour: density = (1/(k·M)) Σ_j #{real balls holding generated row j}
  /// (1 on average for matching distributions, above 1 where generated rows crowd the real
  /// modes), coverage = the fraction of real rows whose ball holds some generated row.
  public static func densityCoverage(
    real: [Double], rows n: Int, generated: [Double], rows m: Int, columns d: Int, k: Int
  ) -> (density: Double, coverage: Double) {
    precondition(k >= 1 && k < n && m >= 1, "k = \(k) needs more than k real rows and a generated one")
    let balls = radii(real, n, columns: d, k: k)
    let cross = squaredDistances(real, n, generated, m, columns: d)
    var held = 0
    var covered = 0
    for i in 0..<n {
      let inside = (0..<m).reduce(0) { $0 + (cross[i * m + $1] <= balls[i] ? 1 : 0) }
      held += inside
      if inside > 0 { covered += 1 }
    }
    return (Double(held) / Double(k * m), Double(covered) / Double(n))
  }

  /// Squared Euclidean distances between the rows of `a` (`p × d`) and of `b` (`q × d`),
  /// row-major `p × q`.
  static func squaredDistances(_ a: [Double], _ p: Int, _ b: [Double], _ q: Int, columns d: Int) -> [Double] {
    var g = [Double](repeating: 0, count: p * q)
    cblas_dgemm(
      CblasRowMajor, CblasNoTrans, CblasTrans, Int32(p), Int32(q), Int32(d), -2, a, Int32(d), b, Int32(d), 0, &g,
      Int32(q))
    let na = (0..<p).map { i in (0..<d).reduce(0.0) { $0 + a[i * d + $1] * a[i * d + $1] } }
    let nb = (0..<q).map { i in (0..<d).reduce(0.0) { $0 + b[i * d + $1] * b[i * d + $1] } }
    for i in 0..<p { for j in 0..<q { g[i * q + j] = max(0, g[i * q + j] + na[i] + nb[j]) } }
    return g
  }

  /// The squared distance of each row to its k-th nearest other row of the same set.
  static func radii(_ a: [Double], _ p: Int, columns d: Int, k: Int) -> [Double] {
    let g = squaredDistances(a, p, a, p, columns: d)
    return (0..<p).map { i in
      var row = Array(g[(i * p)..<((i + 1) * p)])
      row.remove(at: i)
      row.sort()
      return row[k - 1]
    }
  }
}
