import DistillCore
import DistillPipeline

/// Coloured shapes on a black background, `[3, size, size]` in [-1, 1]: a synthetic image
/// dataset with known modes that needs no download. Class `k` is shape `k % 4` (square, disc,
/// triangle, cross) in colour `k` of an 8-colour palette, so every class differs from every
/// other in colour and classes 0-3 also in shape; within a class the centre and size vary.
/// Samples are drawn fresh every step (an endless dataset, no cursor).
public final class ShapesSource: DataSource {
  public let size: Int
  public let classes: Int
  public var sampleShape: [Int] { [3, size, size] }

  /// The palette, RGB in [-1, 1]: red, green, blue, yellow, magenta, cyan, orange, white.
  public static let palette: [(Float, Float, Float)] = [
    (1, -1, -1), (-1, 1, -1), (-1, -1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1), (1, 0, -1), (1, 1, 1),
  ]
  public static let shapeNames = ["square", "disc", "triangle", "cross"]
  public static let colourNames = ["red", "green", "blue", "yellow", "magenta", "cyan", "orange", "white"]

  /// `<colour>-<shape>` of each class: `red-square`, `green-disc`, ...
  public var labelNames: [String]? {
    (0..<classes).map { "\(Self.colourNames[$0])-\(Self.shapeNames[$0 % Self.shapeNames.count])" }
  }

  public init(size: Int, classes: Int) {
    precondition((1...Self.palette.count).contains(classes) && size >= 8)
    self.size = size
    self.classes = classes
  }

  public func next(_ count: Int, using rng: inout RandomGenerator) throws -> Batch {
    var labels: [Int] = []
    let pixels = size * size
    let images = Tensor(shape: [count, 3, size, size]) { out in
      for i in 0..<count {
        let label = rng.integers(count: 1, in: 0..<classes)[0]
        let u = rng.uniform(count: 3)
        labels.append(label)
        Self.render(
          label: label, centre: (0.3 + 0.4 * u[0], 0.3 + 0.4 * u[1]), radius: 0.17 + 0.1 * u[2], size: size,
          into: out.baseAddress! + i * 3 * pixels)
      }
    }
    return Batch(samples: images, labels: labels)
  }

  /// Whether the point `(x, y)` (in units of the image side) lies in shape `shape` of centre
  /// `c` and half-extent `r`.
  public static func inside(_ shape: Int, x: Float, y: Float, c: (Float, Float), r: Float) -> Bool {
    let dx = x - c.0
    let dy = y - c.1
    switch shape {
    case 0: return abs(dx) <= r && abs(dy) <= r
    case 1: return dx * dx + dy * dy <= r * r
    case 2:  // apex up, base at c.1 + r
      guard dy <= r && dy >= -r else { return false }
      return abs(dx) <= (dy + r) / 2
    default: return (abs(dx) <= r && abs(dy) <= r / 3) || (abs(dy) <= r && abs(dx) <= r / 3)
    }
  }

  /// Draws one image (3 planes) with 4x4 supersampling for smooth edges.
  static func render(
    label: Int, centre: (Float, Float), radius: Float, size: Int, into out: UnsafeMutablePointer<Float>
  ) {
    let colour = palette[label]
    let shape = label % shapeNames.count
    let pixels = size * size
    let side = Float(size)
    for py in 0..<size {
      for px in 0..<size {
        var hits = 0
        for sy in 0..<4 {
          for sx in 0..<4 {
            let x = (Float(px) + (Float(sx) + 0.5) / 4) / side
            let y = (Float(py) + (Float(sy) + 0.5) / 4) / side
            if inside(shape, x: x, y: y, c: centre, r: radius) { hits += 1 }
          }
        }
        let coverage = Float(hits) / 16
        let index = py * size + px
        out[index] = -1 + coverage * (colour.0 + 1)
        out[pixels + index] = -1 + coverage * (colour.1 + 1)
        out[2 * pixels + index] = -1 + coverage * (colour.2 + 1)
      }
    }
  }
}

public enum ShapesData: DataComponent {
  public static let id = "shapes"
  public static let summary =
    "synthetic coloured shapes on black, [3, size, size] in [-1, 1], K classes (known modes), drawn fresh every step"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("size", .integer(8...256), default: .number(16), "the image side in pixels"),
    ParameterSpec(
      "classes", .integer(1...8), default: .number(4),
      "how many classes: class k is shape k mod 4 (square, disc, triangle, cross) in colour k (red, green, blue, yellow, magenta, cyan, orange, white)"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource {
    ShapesSource(size: entry.int("size"), classes: entry.int("classes"))
  }
}
