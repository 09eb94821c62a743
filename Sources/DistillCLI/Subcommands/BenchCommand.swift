import ArgumentParser
import CKernels
import DistillCore
import Foundation

/// `pipeline bench`: the workloads of docs/benchmarks.md, timed as `torch_ref.py` times them.
struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Time the benchmark workloads (median seconds per step after warm-up, peak RSS).",
    discussion: """
      Each workload runs in a child process of its own, so that its peak resident memory is its \
      own, as torch_ref.py advises. With --json the last line of output is one JSON object with \
      the keys torch_ref.py prints (sgemm_1024_gflops, w1_toy2d_dmd_step_s, ..., peak_rss_mib), \
      plus <workload>_peak_rss_mib for each workload.
      """)

  @Flag(help: "End the output with one JSON object of the figures.")
  var json = false

  @Option(name: .customLong("workload"), help: "A workload to run (repeatable): \(Workload.allCases.map(\.rawValue).joined(separator: ", ")). Default: all but w5, w5bf16 and sd15.")
  var workloads: [Workload] = []

  @Option(help: "Activation recomputation in the training workloads (w2, w3, w5, w5bf16): none, blocks (each UNet block's intermediates computed again during backward) or selective (only norms, activations, concatenations, upsamplings and the attention blocks computed again).")
  var recompute = ActivationRecompute.none

  @Option(name: .customLong("weight-format"), help: "The format of the sd15 UNet's product weights: fp32, or bf16 (held in bfloat16, products on the bfloat16 kernels; needs AVX512-BF16).")
  var weights = WeightFormat.fp32

  @Flag(help: .hidden)
  var inProcess = false

  func run() throws {
    let selected = workloads.isEmpty ? Workload.defaults : workloads
    if selected.contains(.w5bf16) && !ComputePrecision.bf16Supported {
      throw ValidationError("--workload w5bf16 needs a CPU with AVX512-BF16 (and Distillery's product kernel)")
    }
    if weights == .bf16 {
      guard selected.allSatisfy({ $0 == .sd15 }) else {
        throw ValidationError("--weight-format bf16 applies to --workload sd15 only (the other workloads train their weights)")
      }
      guard weights.isSupported else {
        throw ValidationError("--weight-format bf16 needs a CPU with AVX512-BF16 (and Distillery's product kernel)")
      }
    }
    if inProcess {
      // A child: run the one workload and print its figures as JSON.
      precondition(selected.count == 1)
      var figures = withActivationRecompute(recompute) { selected[0].run(weights: weights) }
      figures["\(selected[0].rawValue)_peak_rss_mib"] = peakResidentMiB()
      figures["\(selected[0].rawValue)_peak_tensors_mib"] = Double(distill_buffer_peak_live()) / 1_048_576
      print(try jsonLine(figures))
      return
    }
    var all: [String: Double] = [:]
    for workload in selected {
      let figures = try runChild(workload)
      for (key, value) in figures.sorted(by: { $0.key < $1.key }) {
        print("\(key): \(format(value))")
      }
      all.merge(figures) { $1 }
    }
    all["peak_rss_mib"] = all.filter { $0.key.hasSuffix("_peak_rss_mib") }.values.max() ?? peakResidentMiB()
    all["threads"] = Double(ComputeThreads.count)
    if GemmKernel.isOwn {
      print("products: Distillery's AVX-512 kernel, \(ComputeThreads.count) threads (OpenBLAS \(blasCoreName()) kernels unused)")
    } else {
      print("blas: OpenBLAS \(blasCoreName()) kernels, \(blasThreads()) threads")
    }
    if recompute != ActivationRecompute.none { print("activation recompute: \(recompute.rawValue)") }
    if weights != .fp32 { print("weight format: \(weights.rawValue)") }
    if json { print(try jsonLine(all)) }
  }

  private func runChild(_ workload: Workload) throws -> [String: Double] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    if !FileManager.default.fileExists(atPath: "/proc/self/exe") {
      process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    }
    process.arguments = [
      "bench", "--in-process", "--workload", workload.rawValue, "--recompute", recompute.rawValue, "--weight-format",
      weights.rawValue,
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = readToEnd(pipe.fileHandleForReading)
    process.waitUntilExit()
    guard process.terminationStatus == 0,
      let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
      let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Double]
    else { throw ValidationError("workload \(workload.rawValue) failed (exit \(process.terminationStatus))") }
    return object
  }

  private func jsonLine(_ figures: [String: Double]) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: figures, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
  }

  private func format(_ value: Double) -> String {
    value >= 100 ? String(format: "%.1f", value) : String(format: "%.6g", value)
  }
}

/// This process's resource usage, all threads.
func processUsage() -> rusage {
  var usage = rusage()
  #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
  #else
    getrusage(RUSAGE_SELF, &usage)
  #endif
  return usage
}

/// The process's peak resident set size in MiB (Linux reports `ru_maxrss` in KiB).
func peakResidentMiB() -> Double {
  #if os(Linux)
    return Double(processUsage().ru_maxrss) / 1024
  #else
    return Double(processUsage().ru_maxrss) / (1024 * 1024)
  #endif
}

/// Median of `reps` timings of `body` after `warm` untimed runs, in seconds: wall-clock time,
/// or with `DISTILL_BENCH_CLOCK=cpu` the CPU time of the process (user and system, all
/// threads), which a machine loaded by other work inflates less (compare it at one thread:
/// idle threads that spin count too).
func medianSeconds(warm: Int, reps: Int, _ body: () -> Void) -> Double {
  let cpu = ProcessInfo.processInfo.environment["DISTILL_BENCH_CLOCK"] == "cpu"
  func now() -> Double {
    guard cpu else { return Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    let usage = processUsage()
    let seconds = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec
    return Double(seconds) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
  }
  for _ in 0..<warm { body() }
  var times: [Double] = []
  for _ in 0..<reps {
    let start = now()
    body()
    times.append(now() - start)
  }
  times.sort()
  return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
}

/// Everything readable from `handle` until end of file. Foundation's `readDataToEndOfFile()`
/// traps when a signal interrupts its read (EINTR); this retries.
private func readToEnd(_ handle: FileHandle) -> Data {
  var data = Data()
  var buffer = [UInt8](repeating: 0, count: 1 << 16)
  while true {
    let count = buffer.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
    if count > 0 {
      data.append(contentsOf: buffer[0..<count])
    } else if count == 0 || errno != EINTR {
      return data
    }
  }
}
