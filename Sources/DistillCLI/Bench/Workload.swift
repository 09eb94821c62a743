import ArgumentParser
import DistillCore
import DistillNN

#if canImport(CBLAS)
  import CBLAS
#endif

/// The kernel set OpenBLAS runs (it honours `OPENBLAS_CORETYPE`, else detects the CPU).
func blasCoreName() -> String {
  #if canImport(CBLAS)
    return String(cString: openblas_get_corename())
  #else
    return "Accelerate"
  #endif
}

func blasThreads() -> Int {
  #if canImport(CBLAS)
    return Int(openblas_get_num_threads())
  #else
    return 0
  #endif
}

/// The benchmark workloads of `../shared/bench/WORKLOADS.md`, with torch_ref.py's shapes, and
/// `lpips`, with scripts/torch_lpips_ref.py's.
enum Workload: String, CaseIterable, ExpressibleByArgument {
  case elementwise, gemm, lpips, w1, w2, w3, w4, w5, w5bf16, sd15

  /// What `pipeline bench` runs without `--workload`: all but w5, w5bf16 (about a minute
  /// each, as torch_ref.py does) and sd15 (3.4 GB of weights).
  static var defaults: [Workload] { allCases.filter { ![.w5, .w5bf16, .sd15].contains($0) } }

  /// Runs the workload and returns its figures under torch_ref.py's keys; `weights` is the
  /// format of sd15's UNet weights (the other workloads train in float32).
  func run(weights: WeightFormat = .fp32) -> [String: Double] {
    switch self {
    case .elementwise: return ElementwiseWorkload.figures()
    case .gemm: return ["sgemm_1024_gflops": GemmWorkload.gflops()]
    case .lpips: return ["lpips_alex_fwd_bwd_16x64_s": LPIPSWorkload.secondsPerStep()]
    case .w1: return ["w1_toy2d_dmd_step_s": DMDWorkload.toy().secondsPerStep(warm: 3, reps: 15)]
    case .w2: return ["w2_unet32_train_step_s": UNetTrainingWorkload.secondsPerStep(benchmarkUNet, batch: 16, reps: 7)]
    case .w3: return ["w3_dmd_unet32_step_s": DMDWorkload.unet().secondsPerStep(warm: 2, reps: 7)]
    case .w4: return UNetSamplingWorkload.figures()
    case .w5: return ["w5_unet35m_train_step_s": UNetTrainingWorkload.secondsPerStep(benchmarkUNet35M, batch: 8, reps: 5)]
    case .w5bf16: return ["w5_unet35m_train_step_bf16_s": UNetTrainingWorkload.secondsPerStep(benchmarkUNet35M, batch: 8, reps: 5, precision: .bf16)]
    case .sd15: return SD15Workload.figures(weights: weights)
    }
  }
}

/// One update of `optimizer`'s parameters down the gradient of `loss`.
func update(_ optimizer: some Optimizer, minimizing loss: Tensor) {
  optimizer.zeroGrad()
  loss.backward()
  optimizer.step()
}

/// One 1024^3 product through `Tensor.matmul`.
enum GemmWorkload {
  static func gflops() -> Double {
    var rng = RandomGenerator(seed: 0)
    let a = Tensor.normal([1024, 1024], mean: 0, std: 1, using: &rng)
    let b = Tensor.normal([1024, 1024], mean: 0, std: 1, using: &rng)
    let seconds = medianSeconds(warm: 3, reps: 20) { _ = a.matmul(b) }
    return 2 * 1024 * 1024 * 1024 / seconds / 1e9
  }
}
