import Foundation

/// A denoising model as the samplers call it: the current state `x` (`[N, ...]`) and one
/// conditioning value per sample (a timestep, σ, or c_noise, as the sampler documents) give an
/// output of the shape of `x`.
public typealias DenoisingModel = (_ x: Tensor, _ timesteps: [Float]) throws -> Tensor

/// A sampler that steps through the schedule's discrete timesteps picked by a
/// ``TimestepSpacing`` (``DDPMSampler``, ``DDIMSampler``).
public protocol SpacedTimestepSampler {
  var schedule: NoiseSchedule { get }
  var spacing: TimestepSpacing { get }
  var stepsOffset: Int { get }
}

extension SpacedTimestepSampler {
  /// The inference timesteps for `steps` steps, from most to least noisy.
  public func timesteps(steps: Int) -> [Int] {
    spacing.timesteps(count: steps, trainSteps: schedule.trainSteps, stepsOffset: stepsOffset)
  }
}

/// How a sampler picks its inference timesteps out of `0..<T` (diffusers' `timestep_spacing`).
public enum TimestepSpacing: String, Sendable, CaseIterable {
  /// `arange(n)·(T//n)`, reversed, plus `steps_offset` (DDPM/DDIM default; SD uses offset 1).
  case leading
  /// `round(arange(T, 0, −T/n)) − 1`: always starts at `T − 1`.
  case trailing
  /// `round(linspace(0, T−1, n))`, reversed (Euler's default, unrounded there).
  case linspace

  /// The integer timesteps of diffusers' `DDPMScheduler`/`DDIMScheduler.set_timesteps`, from
  /// most to least noisy. `stepsOffset` applies to ``leading`` only, as in diffusers.
  public func timesteps(count: Int, trainSteps: Int = 1000, stepsOffset: Int = 0) -> [Int] {
    precondition(count >= 1 && count <= trainSteps, "inference steps must be in 1...\(trainSteps), got \(count)")
    switch self {
    case .leading:
      let ratio = trainSteps / count
      return (0..<count).reversed().map { $0 * ratio + stepsOffset }
    case .trailing:
      let ratio = Double(trainSteps) / Double(count)
      return numpyArange(Double(trainSteps), 0, -ratio).map { Int($0.rounded(.toNearestOrEven)) - 1 }
    case .linspace:
      return numpyLinspace(0, Double(trainSteps - 1), count).reversed().map { Int($0.rounded(.toNearestOrEven)) }
    }
  }

  /// The fractional timesteps of diffusers' `EulerDiscreteScheduler.set_timesteps` (float32,
  /// from most to least noisy): ``linspace`` is not rounded there.
  public func fractionalTimesteps(count: Int, trainSteps: Int = 1000, stepsOffset: Int = 0) -> [Double] {
    switch self {
    case .linspace:
      return numpyLinspace(0, Double(trainSteps - 1), count).reversed().map { Double(Float($0)) }
    case .leading, .trailing:
      return timesteps(count: count, trainSteps: trainSteps, stepsOffset: stepsOffset).map(Double.init)
    }
  }
}

/// `steps` timesteps from `T − 1` down in equal strides of `T/steps`, rounded (the sampling
/// timesteps of a few-step denoiser generator, and of progressive distillation's rounds).
public func trailingTimesteps(steps: Int, trainSteps: Int) -> [Int] {
  (0..<steps).map { i in trainSteps - 1 - Int((Double(i) * Double(trainSteps) / Double(steps)).rounded()) }
}

/// `np.linspace(start, stop, n)`: `start + i·step`, with the last value exactly `stop`.
func numpyLinspace(_ start: Double, _ stop: Double, _ n: Int) -> [Double] {
  guard n > 1 else { return n == 1 ? [start] : [] }
  let step = (stop - start) / Double(n - 1)
  return (0..<n).map { $0 == n - 1 ? stop : start + Double($0) * step }
}

/// `np.arange(start, stop, step)` for floats: `ceil((stop − start)/step)` values `start + i·step`.
func numpyArange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
  let count = Swift.max(0, Int(((stop - start) / step).rounded(.up)))
  return (0..<count).map { start + Double($0) * step }
}

/// `np.interp(x, arange(count), table)`: piecewise-linear, clamped at both ends.
func interpolate(_ x: Double, in table: [Double]) -> Double {
  if x <= 0 { return table[0] }
  if x >= Double(table.count - 1) { return table[table.count - 1] }
  let low = Int(x.rounded(.down))
  let w = x - Double(low)
  return low + 1 < table.count ? table[low] + w * (table[low + 1] - table[low]) : table[low]
}
