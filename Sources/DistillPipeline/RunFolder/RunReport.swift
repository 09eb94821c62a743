import DistillCore
import Foundation

/// Writes a run folder's `report.html`: one self-contained page (no JavaScript, no external
/// resources) with the run's summary, a line chart per metric family, the latest sample grids
/// and the resolved manifest.
///
/// Metric keys are grouped into families by the part before the first `/`: `loss/dm` and
/// `loss/regression` share the chart "loss", while `lr` (no slash) gets a chart of its own.
/// Non-finite values are left out of the lines.
public enum RunReport {
  /// Writes the report to `path` atomically (temporary file, then rename).
  ///
  /// - Parameters:
  ///   - title: The page's heading.
  ///   - records: The metrics, as ``MetricsLog/read(path:)`` gives them; any order.
  ///   - grids: Sample grid images by step, with paths relative to the report's folder
  ///     (plain file paths, such as `samples/step-100.png`; they are percent-encoded here).
  ///   - summary: Label and value rows for the summary table, in order.
  ///   - manifestJSON: The resolved manifest, shown verbatim.
  ///   - gridLimit: How many of the latest grids to show, newest first.
  /// - Throws: ``DistillError/io(path:reason:)`` when the file cannot be written.
  public static func write(
    to path: String, title: String, records: [MetricsRecord],
    grids: [(step: Int, relativePath: String)], summary: [(String, String)],
    manifestJSON: String, gridLimit: Int = 8
  ) throws {
    let page = html(
      title: title, records: records, grids: grids, summary: summary,
      manifestJSON: manifestJSON, gridLimit: gridLimit)
    try AtomicFileWriter.write(Array(page.utf8), to: path)
  }

  /// The page's HTML.
  static func html(
    title: String, records: [MetricsRecord], grids: [(step: Int, relativePath: String)],
    summary: [(String, String)], manifestJSON: String, gridLimit: Int = 8
  ) -> String {
    var page = """
      <!DOCTYPE html>
      <html lang="en">
      <head>
      <meta charset="utf-8">
      <title>\(escapeHTML(title))</title>
      <style>
      body { font-family: sans-serif; margin: 2em auto; max-width: 1000px; padding: 0 1em; color: #222; }
      table.summary { border-collapse: collapse; margin-bottom: 1.5em; }
      table.summary th, table.summary td { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }
      table.summary th { background: #f4f4f4; font-weight: normal; }
      figure.chart { margin: 0 0 1.5em 0; }
      figure.chart svg { max-width: 100%; height: auto; border: 1px solid #ddd; }
      .grids { display: flex; flex-wrap: wrap; gap: 1em; }
      .grids figure { margin: 0; }
      .grids img { max-width: 480px; image-rendering: pixelated; border: 1px solid #ddd; }
      figcaption { color: #555; font-size: 0.9em; }
      pre { background: #f6f6f6; border: 1px solid #ddd; padding: 1em; overflow-x: auto; }
      </style>
      </head>
      <body>
      <h1>\(escapeHTML(title))</h1>

      """
    if !summary.isEmpty {
      page += "<table class=\"summary\">\n"
      for (label, value) in summary {
        page += "<tr><th>\(escapeHTML(label))</th><td>\(escapeHTML(value))</td></tr>\n"
      }
      page += "</table>\n"
    }

    page += "<h2>Metrics</h2>\n"
    let charts = Self.charts(records)
    if charts.isEmpty { page += "<p>No metrics recorded.</p>\n" }
    for chart in charts {
      page += "<figure class=\"chart\">\n\(chart.svg())\n</figure>\n"
    }

    page += "<h2>Samples</h2>\n"
    let latest = grids.sorted { $0.step > $1.step }.prefix(max(gridLimit, 0))
    if latest.isEmpty {
      page += "<p>No sample grids yet.</p>\n"
    } else {
      page += "<div class=\"grids\">\n"
      for grid in latest {
        let source =
          grid.relativePath.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)
          ?? grid.relativePath
        page += "<figure><img src=\"\(escapeHTML(source))\" alt=\"samples at step \(grid.step)\">"
        page += "<figcaption>step \(grid.step)</figcaption></figure>\n"
      }
      page += "</div>\n"
    }

    page += "<h2>Manifest</h2>\n<pre>\(escapeHTML(manifestJSON))</pre>\n</body>\n</html>\n"
    return page
  }

  /// The family a metric key belongs to: the part before the first `/`, or the whole key.
  static func family(of key: String) -> String {
    key.firstIndex(of: "/").map { String(key[..<$0]) } ?? key
  }

  /// One chart per family, families and series in sorted order, points in step order.
  static func charts(_ records: [MetricsRecord]) -> [LineChart] {
    // Sort by step, keeping file order among equal steps.
    let ordered = records.enumerated()
      .sorted { ($0.element.step, $0.offset) < ($1.element.step, $1.offset) }
      .map(\.element)
    let keys = Set(records.flatMap(\.values.keys))
    let families = Dictionary(grouping: keys, by: family(of:))
    return families.keys.sorted().map { name in
      let series = families[name]!.sorted().map { key in
        LineChart.Series(
          name: key,
          points: ordered.compactMap { record in
            guard let y = record.values[key], y.isFinite else { return nil }
            return (x: Double(record.step), y: y)
          })
      }
      return LineChart(title: name, series: series)
    }
  }
}
