import DistillTestSupport
import Testing

@testable import DistillDiffusion

/// A `[2, 1, 2, 2]` tensor of `f(i)` for `i` in `0..<8`, to mirror inputs built in Python.
func formulaTensor(_ f: (Double) -> Double) -> Tensor {
  Tensor(shape: [2, 1, 2, 2], scalars: (0..<8).map { Float(f(Double($0))) })
}
