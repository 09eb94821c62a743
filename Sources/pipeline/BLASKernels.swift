import Foundation

#if canImport(CBLAS)
  import CBLAS
#endif

/// Chooses OpenBLAS's AVX-512 kernels where its own detection falls short.
///
/// Debian 12's OpenBLAS 0.3.21 predates Zen 4 support and runs its Haswell (AVX2) kernels on
/// AMD CPUs that have the full AVX-512 set; its SkylakeX kernels run there correctly and about
/// 1.8x faster (docs/benchmarks.md). OpenBLAS reads `OPENBLAS_CORETYPE` only when it is
/// loaded, so the tool sets it and re-executes itself once. A user's own `OPENBLAS_CORETYPE`
/// always wins, and `DISTILL_BLAS_AUTOSELECT=0` turns this off.
enum BLASKernels {
  static let requiredFlags: Set<String> = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

  /// The name of the kernel set OpenBLAS is using, e.g. "Haswell" or "SkylakeX".
  static var coreName: String {
    #if canImport(CBLAS)
      return String(cString: openblas_get_corename())
    #else
      return "Accelerate"
    #endif
  }

  static func selectForThisMachine() {
    #if os(Linux)
      let environment = ProcessInfo.processInfo.environment
      guard environment["OPENBLAS_CORETYPE"] == nil, environment["DISTILL_BLAS_AUTOSELECT"] != "0",
        ["haswell", "zen"].contains(coreName.lowercased()),
        let flagsLine = firstLine(of: "/proc/cpuinfo", startingWith: "flags")
      else { return }
      let flags = Set(flagsLine.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }).map(String.init))
      guard requiredFlags.isSubset(of: flags) else { return }
      setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1)
      let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
      execv("/proc/self/exe", arguments)
      // execv returns only on failure: carry on with the kernels OpenBLAS chose.
    #endif
  }

  /// The first line of `path` that starts with `prefix`, read line by line: /proc files report
  /// a size of 0, so reading them by size yields nothing.
  static func firstLine(of path: String, startingWith prefix: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var line: UnsafeMutablePointer<CChar>? = nil
    var capacity = 0
    defer { free(line) }
    while getline(&line, &capacity, file) > 0 {
      let text = String(cString: line!)
      if text.hasPrefix(prefix) { return text }
    }
    return nil
  }
}
