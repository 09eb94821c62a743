import Foundation

/// A self-contained SVG line chart: axes with round tick values, grid lines, one polyline
/// per series and a legend. Used by ``RunReport``.
struct LineChart {
  struct Series {
    var name: String
    /// Finite points only, in drawing order.
    var points: [(x: Double, y: Double)]
  }

  var title: String
  var xLabel = "step"
  var series: [Series]

  static let width = 760.0
  static let height = 320.0
  private static let plotLeft = 72.0
  private static let plotRight = 560.0
  private static let plotTop = 36.0
  private static let plotBottom = 272.0
  private static let legendRows = 13
  static let palette = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  ]

  /// The chart as an `<svg>` element (with its namespace, so it also stands alone as a file).
  func svg() -> String {
    let xs = series.flatMap { $0.points.map(\.x) }
    let ys = series.flatMap { $0.points.map(\.y) }
    let xScale = NiceScale(data: xs, clampAtZero: (xs.min() ?? 0) >= 0)
    let yScale = NiceScale(data: ys, clampAtZero: false)
    let (left, right, top, bottom) = (Self.plotLeft, Self.plotRight, Self.plotTop, Self.plotBottom)
    func px(_ x: Double) -> Double { left + (x - xScale.lower) / (xScale.upper - xScale.lower) * (right - left) }
    func py(_ y: Double) -> Double { bottom - (y - yScale.lower) / (yScale.upper - yScale.lower) * (bottom - top) }

    var out = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(f(Self.width))" height="\(f(Self.height))" \
      viewBox="0 0 \(f(Self.width)) \(f(Self.height))" font-family="sans-serif" font-size="11" \
      role="img" aria-label="\(escapeHTML(title))">
      <title>\(escapeHTML(title))</title>
      <rect x="0" y="0" width="\(f(Self.width))" height="\(f(Self.height))" fill="#ffffff"/>
      <text x="\(f(left))" y="22" font-size="14" font-weight="bold">\(escapeHTML(title))</text>

      """
    // Grid lines and tick labels.
    for tick in yScale.ticks {
      let y = f(py(tick))
      out += "<line x1=\"\(f(left))\" y1=\"\(y)\" x2=\"\(f(right))\" y2=\"\(y)\" stroke=\"#e4e4e4\"/>\n"
      out += "<text x=\"\(f(left - 6))\" y=\"\(y)\" dy=\"0.32em\" text-anchor=\"end\">\(yScale.label(tick))</text>\n"
    }
    for tick in xScale.ticks {
      let x = f(px(tick))
      out += "<line x1=\"\(x)\" y1=\"\(f(top))\" x2=\"\(x)\" y2=\"\(f(bottom))\" stroke=\"#e4e4e4\"/>\n"
      out += "<line x1=\"\(x)\" y1=\"\(f(bottom))\" x2=\"\(x)\" y2=\"\(f(bottom + 4))\" stroke=\"#333333\"/>\n"
      out += "<text x=\"\(x)\" y=\"\(f(bottom + 16))\" text-anchor=\"middle\">\(xScale.label(tick))</text>\n"
    }
    // Axes.
    out += "<path fill=\"none\" stroke=\"#333333\" d=\"M\(f(left)),\(f(top)) V\(f(bottom)) H\(f(right))\"/>\n"
    out += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(Self.height - 8))\" text-anchor=\"middle\">"
      + "\(escapeHTML(xLabel))</text>\n"
    // Series.
    for (index, s) in series.enumerated() {
      let color = Self.palette[index % Self.palette.count]
      guard !s.points.isEmpty else { continue }
      let points = s.points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
      out += "<polyline class=\"series\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" "
        + "stroke-linejoin=\"round\" points=\"\(points)\"><title>\(escapeHTML(s.name))</title></polyline>\n"
      if s.points.count == 1, let p = s.points.first {
        out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3\" fill=\"\(color)\"/>\n"
      }
    }
    // Legend.
    for (index, s) in series.prefix(Self.legendRows).enumerated() {
      let color = Self.palette[index % Self.palette.count]
      let y = Self.plotTop + 8 + Double(index) * 18
      let name = s.name.count > 24 ? String(s.name.prefix(23)) + "\u{2026}" : s.name
      let note = s.points.isEmpty ? " (no finite values)" : ""
      out += "<line x1=\"576\" y1=\"\(f(y))\" x2=\"596\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"3\"/>\n"
      out += "<text x=\"602\" y=\"\(f(y))\" dy=\"0.32em\">\(escapeHTML(name + note))"
        + "<title>\(escapeHTML(s.name))</title></text>\n"
    }
    if series.count > Self.legendRows {
      let y = Self.plotTop + 8 + Double(Self.legendRows) * 18
      out += "<text x=\"576\" y=\"\(f(y))\" dy=\"0.32em\">+\(series.count - Self.legendRows) more</text>\n"
    }
    return out + "</svg>"
  }

  /// A coordinate with one decimal, which is finer than a pixel.
  private func f(_ value: Double) -> String {
    String(format: "%.1f", value)
  }
}

/// An axis range widened to round numbers, with ticks at multiples of 1, 2 or 5 × 10^k.
struct NiceScale {
  private(set) var lower: Double
  private(set) var upper: Double
  private(set) var step: Double

  /// Covers `data` (finite values); an empty or constant range is widened around its value.
  /// `clampAtZero` keeps a non-negative range from reaching below zero.
  init(data: [Double], clampAtZero: Bool, targetTicks: Int = 6) {
    var low = data.min() ?? 0
    var high = data.max() ?? 1
    if !(high > low) {
      let pad = low == 0 ? 1 : abs(low) * 0.1
      (low, high) = (low - pad, high + pad)
    }
    if clampAtZero && low < 0 && (data.min() ?? 0) >= 0 { low = 0 }
    let span = Self.nice(high - low, round: false)
    step = Self.nice(span / Double(targetTicks - 1), round: true)
    lower = (low / step).rounded(.down) * step
    upper = (high / step).rounded(.up) * step
    let count = (upper - lower) / step
    if !(count.isFinite && count >= 1 && count <= 100 && step > 0) {
      // Extreme magnitudes: fall back to the data's own bounds.
      (lower, upper, step) = (low, high, high - low)
      if !(step.isFinite && step > 0) { (lower, upper, step) = (0, 1, 1) }
    }
  }

  /// The tick values, from `lower` to `upper`.
  var ticks: [Double] {
    let count = Int(((upper - lower) / step).rounded())
    return (0...max(count, 0)).map { i in
      let value = lower + Double(i) * step
      return abs(value) < step * 1e-9 ? 0 : value
    }
  }

  /// A tick's label, with just enough digits to tell ticks apart.
  func label(_ value: Double) -> String {
    if value == 0 { return "0" }
    let largest = max(abs(lower), abs(upper))
    let stepExponent = Int(log10(step).rounded(.down))
    if largest >= 1e6 || step < 1e-4 {
      let digits = min(max(Int(log10(largest).rounded(.down)) - stepExponent, 0), 15)
      return String(format: "%.\(digits)e", value)
    }
    return String(format: "%.\(max(0, -stepExponent))f", value)
  }

  /// The 1, 2, 5 (or, not rounding, 1, 2, 5, 10 ceiling) multiple of a power of ten near `x`.
  static func nice(_ x: Double, round: Bool) -> Double {
    guard x > 0, x.isFinite else { return 1 }
    let exponent = log10(x).rounded(.down)
    let fraction = x / pow(10, exponent)
    let niceFraction: Double
    if round {
      niceFraction = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10
    } else {
      niceFraction = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
    }
    return niceFraction * pow(10, exponent)
  }
}

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references (and control
/// characters by U+FFFD), safe in HTML and SVG text and in quoted attribute values.
func escapeHTML(_ text: String) -> String {
  var out = ""
  out.reserveCapacity(text.utf8.count)
  for character in text {
    switch character {
    case "&": out += "&amp;"
    case "<": out += "&lt;"
    case ">": out += "&gt;"
    case "\"": out += "&quot;"
    case "'": out += "&#39;"
    case _ where character.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r" }:
      out += "\u{FFFD}"  // control characters are not allowed in XML, even as references
    default: out.append(character)
    }
  }
  return out
}
