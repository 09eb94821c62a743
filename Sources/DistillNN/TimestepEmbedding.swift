import DistillCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Sinusoidal embeddings of `timesteps` (`[N]`) as diffusers' `get_timestep_embedding` computes
/// them, in float32 and in the same order so that UNet parity holds:
///
/// `freq_i = exp(-log(maxPeriod) * i / (half - frequencyShift))`, `i < half = dimension / 2`;
/// the result is `[sin(t * freq), cos(t * freq)]` (or cos first with `flipSinToCos`), zero-padded
/// to an odd `dimension`.
public func sinusoidalEmbedding(
  _ timesteps: [Float], dimension: Int, flipSinToCos: Bool = false, frequencyShift: Float = 1,
  scale: Float = 1, maxPeriod: Float = 10_000
) -> Tensor {
  let half = dimension / 2
  var frequencies = [Float](repeating: 0, count: half)
  let logPeriod = -logf(maxPeriod)
  for i in 0..<half { frequencies[i] = expf(logPeriod * Float(i) / (Float(half) - frequencyShift)) }
  // All angles first, then sine and cosine in one vectorised pass (``sinesAndCosines(_:)``);
  // glibc's scalar sinf and cosf were a few percent of the toy DMD step.
  let count = timesteps.count
  var angles = [Float](repeating: 0, count: count * half)
  for n in 0..<count {
    for i in 0..<half { angles[n * half + i] = scale * (timesteps[n] * frequencies[i]) }
  }
  let (sines, cosines) = sinesAndCosines(angles)
  return Tensor(shape: [count, dimension]) { out in
    for n in 0..<count {
      let row = out.baseAddress! + n * dimension
      for i in 0..<half {
        let (sine, cosine) = (sines[n * half + i], cosines[n * half + i])
        row[i] = flipSinToCos ? cosine : sine
        row[half + i] = flipSinToCos ? sine : cosine
      }
      if dimension % 2 == 1 { row[dimension - 1] = 0 }
    }
  }
}

/// diffusers' `Timesteps` + `TimestepEmbedding`: values through ``sinusoidalEmbedding`` with
/// `channels` frequencies, then `linear_1`, SiLU, `linear_2` to `dimension` (a UNet's time
/// embedding and its `"timestep"` class embedding).
final class TimestepEmbedding: Module {
  let linear1: Linear
  let linear2: Linear
  let channels: Int
  let flipSinToCos: Bool
  let frequencyShift: Float

  init(channels: Int, dimension: Int, flipSinToCos: Bool, frequencyShift: Float, using rng: inout RandomGenerator) {
    (self.channels, self.flipSinToCos, self.frequencyShift) = (channels, flipSinToCos, frequencyShift)
    linear1 = Linear(inputSize: channels, outputSize: dimension, using: &rng)
    linear2 = Linear(inputSize: dimension, outputSize: dimension, using: &rng)
    super.init()
    register("linear_1", linear1)
    register("linear_2", linear2)
  }

  func callAsFunction(_ values: [Float]) -> Tensor {
    let projected = sinusoidalEmbedding(values, dimension: channels, flipSinToCos: flipSinToCos, frequencyShift: frequencyShift)
    return linear2(linear1(projected).silu())
  }
}
