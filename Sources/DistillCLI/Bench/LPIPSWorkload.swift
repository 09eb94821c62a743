import DistillNN

/// lpips: LPIPS alex forward and backward (gradient w.r.t. the first images, as a loss
/// distance needs) on 16 pairs of 3x64x64, random weights; scripts/torch_lpips_ref.py times
/// the `lpips` package the same way.
enum LPIPSWorkload {
  static func secondsPerStep() -> Double {
    var rng = RandomGenerator(seed: 0)
    let lpips = LPIPS(network: .alex)
    let a = Tensor.uniform([16, 3, 64, 64], low: -1, high: 1, using: &rng)
    let b = Tensor.uniform([16, 3, 64, 64], low: -1, high: 1, using: &rng)
    return medianSeconds(warm: 3, reps: 15) {
      let x = a.requiringGrad()
      lpips(x, b).sum().backward()
      precondition(x.grad != nil)
    }
  }
}
