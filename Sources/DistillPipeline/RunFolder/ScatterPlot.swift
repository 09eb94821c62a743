import DistillCore

/// Draws 2-D points as an RGB image in [0, 1]: reference points (the target distribution)
/// grey, samples red, on white; the figure the DMD paper's toy experiment shows.
public enum ScatterPlot {
  /// A square region holding the central 99.8% of `points` with a 5% margin.
  public static func bounds(_ points: Tensor) -> (low: Float, high: Float) {
    let values = points.scalars.filter(\.isFinite).sorted()
    guard !values.isEmpty else { return (-1, 1) }
    let low = values[values.count / 1000], high = values[values.count - 1 - values.count / 1000]
    let margin = max(high - low, 1e-3) * 0.05
    return (low - margin, high + margin)
  }

  /// `[3, size, size]`; `x` to the right, `y` upwards.
  public static func render(samples: Tensor, reference: Tensor?, bounds: (low: Float, high: Float), size: Int = 320)
    -> Tensor
  {
    var pixels = [Float](repeating: 1, count: 3 * size * size)
    func plot(_ points: Tensor, _ color: (Float, Float, Float), radius: Int) {
      let values = points.scalars
      let scale = Float(size - 1) / (bounds.high - bounds.low)
      for i in 0..<(values.count / 2) {
        let (x, y) = (values[2 * i], values[2 * i + 1])
        guard x.isFinite, y.isFinite else { continue }
        let column = Int(((x - bounds.low) * scale).rounded())
        let row = size - 1 - Int(((y - bounds.low) * scale).rounded())
        for dy in -radius...radius {
          for dx in -radius...radius {
            let (r, c) = (row + dy, column + dx)
            guard r >= 0, r < size, c >= 0, c < size else { continue }
            pixels[r * size + c] = color.0
            pixels[size * size + r * size + c] = color.1
            pixels[2 * size * size + r * size + c] = color.2
          }
        }
      }
    }
    if let reference { plot(reference, (0.75, 0.75, 0.75), radius: 0) }
    plot(samples, (0.85, 0.1, 0.1), radius: 1)
    return Tensor(shape: [3, size, size], scalars: pixels)
  }
}
