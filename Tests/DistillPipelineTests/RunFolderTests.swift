import DistillCore
import Foundation
import Testing

@testable import DistillPipeline

private func temporaryDirectory() throws -> String {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("runfolder-tests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url.path
}

private func contents(_ path: String) throws -> String {
  try String(contentsOfFile: path, encoding: .utf8)
}

/// NaN-aware equality of metric dictionaries.
private func same(_ a: [String: Double], _ b: [String: Double]) -> Bool {
  a.keys.sorted() == b.keys.sorted()
    && a.allSatisfy { key, value in
      let other = b[key]!
      return value.isNaN ? other.isNaN : value.bitPattern == other.bitPattern
    }
}

@Suite struct MetricsLogTests {
  @Test func roundTripsExactValuesAndNonFinite() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    let log = try MetricsLog(path: path, resumingAt: nil)
    let first: [String: Double] = [
      "loss/dm": 0.1, "loss/regression": 1.0 / 3.0, "tiny": .leastNonzeroMagnitude, "huge": 1.7976931348623157e308,
      "neg": -0.0, "big": 1e16, "nan": .nan, "inf": .infinity, "minus inf": -.infinity,
      "quote\"back\\slash\u{1}é": 2,
    ]
    try log.append(step: 0, values: first)
    try log.append(step: 10, values: ["loss/dm": 0.05])
    log.close()

    let records = try MetricsLog.read(path: path)
    #expect(records.map(\.step) == [0, 10])
    #expect(same(records[0].values, first))
    #expect(records[1].values == ["loss/dm": 0.05])
    #expect(records[0].time >= 0 && records[1].time >= records[0].time)

    let lines = try contents(path).split(separator: "\n")
    #expect(lines.count == 2)
    #expect(lines[1].hasPrefix("{\"step\": 10, \"time\": "))
    #expect(lines[1].hasSuffix(", \"loss/dm\": 0.05}"))
    // Keys after step and time are sorted; non-finite values are strings.
    #expect(lines[0].contains("\"big\": 1e+16, \"huge\": 1.7976931348623157e+308, \"inf\": \"inf\""))
    #expect(lines[0].contains("\"minus inf\": \"-inf\", \"nan\": \"nan\", \"neg\": -0.0"))
    #expect(lines[0].contains("\"quote\\\"back\\\\slash\\u0001é\": 2.0"))
    #expect(throws: (any Error).self) { try log.append(step: 11, values: ["x": 1]) }
  }

  @Test func reservedKeysAreRejected() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    let log = try MetricsLog(path: path, resumingAt: nil)
    #expect(throws: DistillError.self) { try log.append(step: 1, values: ["time": 1]) }
    #expect(try MetricsLog.read(path: path).isEmpty)
  }

  @Test func resumingDropsLaterStepsAndAFragment() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    let log = try MetricsLog(path: path, resumingAt: nil)
    for step in 1...5 { try log.append(step: step, values: ["loss": Double(step)]) }
    log.close()
    // The crashed run was cut off mid-line.
    let handle = try #require(FileHandle(forWritingAtPath: path))
    handle.seekToEndOfFile()
    handle.write(Data("{\"step\": 6, \"time\": 1.".utf8))
    handle.closeFile()
    let lastKeptTime = try MetricsLog.read(path: path)[2].time

    let resumed = try MetricsLog(path: path, resumingAt: 3)
    #expect(try MetricsLog.read(path: path).map(\.step) == [1, 2, 3])
    try resumed.append(step: 4, values: ["loss": 40])
    resumed.close()
    let records = try MetricsLog.read(path: path)
    #expect(records.map(\.step) == [1, 2, 3, 4])
    #expect(records[3].values == ["loss": 40])
    #expect(records[3].time >= lastKeptTime)

    // Resuming with no file starts empty; a fresh log replaces the file.
    let other = try temporaryDirectory() + "/metrics.jsonl"
    _ = try MetricsLog(path: other, resumingAt: 7)
    #expect(try MetricsLog.read(path: other).isEmpty)
    _ = try MetricsLog(path: path, resumingAt: nil)
    #expect(try MetricsLog.read(path: path).isEmpty)
  }

  @Test func truncatedLastLineIsSkippedButMalformedLinesThrow() throws {
    let path = try temporaryDirectory() + "/metrics.jsonl"
    let good = "{\"step\": 1, \"time\": 0.5, \"loss\": 2.0}\n"
    try (good + "\n" + "{\"step\": 2, \"time\": 1.0, \"lo").write(toFile: path, atomically: true, encoding: .utf8)
    #expect(try MetricsLog.read(path: path) == [MetricsRecord(step: 1, time: 0.5, values: ["loss": 2])])

    // A complete last line whose newline was lost still counts.
    try (good + "{\"step\": 2, \"time\": 1.0}").write(toFile: path, atomically: true, encoding: .utf8)
    #expect(try MetricsLog.read(path: path).map(\.step) == [1, 2])

    let cases = [
      "{\"step\": 2, \"time\": 1.0, \"lo\n",  // cut short, but not the last line
      "{\"step\": 2.5, \"time\": 1.0}\n",
      "{\"step\": 2, \"time\": 1.0, \"loss\": true}\n",
      "{\"step\": 2, \"time\": 1.0, \"loss\": \"NaN\"}\n",
      "[1, 2]\n",
    ]
    for bad in cases {
      try (good + bad + good).write(toFile: path, atomically: true, encoding: .utf8)
      do {
        _ = try MetricsLog.read(path: path)
        Issue.record("no error for \(bad)")
      } catch let DistillError.malformed(errorPath, detail) {
        #expect(errorPath == path)
        #expect(detail.hasPrefix("line 2: "), "\(detail)")
      }
      // Resuming refuses to rewrite a damaged log.
      #expect(throws: DistillError.self) { try MetricsLog(path: path, resumingAt: 5) }
    }
    #expect(throws: DistillError.self) { try MetricsLog.read(path: path + ".missing") }
  }
}

// MARK: Report

/// The HTML's tags nest properly (void elements aside) and every `<` starts a tag.
private func checkBalanced(_ html: String) {
  let voids: Set<String> = ["meta", "img", "br", "hr", "link", "input"]
  var stack: [String] = []
  var rest = Substring(html)
  while let open = rest.firstIndex(of: "<") {
    rest = rest[rest.index(after: open)...]
    guard let close = rest.firstIndex(of: ">") else {
      Issue.record("unclosed tag")
      return
    }
    let tag = rest[..<close]
    rest = rest[rest.index(after: close)...]
    guard let first = tag.first, first.isLetter || first == "/" || first == "!" else {
      Issue.record("stray < before \(tag.prefix(20))")
      return
    }
    if first == "!" { continue }
    let name = String(tag.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber }).lowercased()
    if first == "/" {
      guard stack.last == name else {
        Issue.record("</\(name)> closes <\(stack.last ?? "nothing")>")
        return
      }
      stack.removeLast()
    } else if !tag.hasSuffix("/") && !voids.contains(name) {
      stack.append(name)
    }
  }
  #expect(stack.isEmpty, "unclosed: \(stack)")
}

/// The point counts of the series polylines, in order.
private func seriesPointCounts(_ svg: Substring) -> [Int] {
  svg.components(separatedBy: "<polyline class=\"series\"").dropFirst().map { chunk in
    let points = chunk.components(separatedBy: "points=\"")[1].prefix { $0 != "\"" }
    #expect(!points.contains("nan") && !points.contains("inf"))
    return points.split(separator: " ").count
  }
}

private func svgs(_ html: String) -> [Substring] {
  html.components(separatedBy: "<svg ").dropFirst().map { $0.components(separatedBy: "</svg>")[0][...] }
}

@Suite struct RunReportTests {
  static let records: [MetricsRecord] = (0..<20).map { i in
    var values: [String: Double] = [
      "loss/dm": 1 / Double(i + 1), "loss/regression": i == 7 ? .nan : 0.5 - Double(i) * 0.01,
      "lr": 1e-4,
    ]
    if i == 19 { values["grad_norm"] = 3 }  // one point only
    return MetricsRecord(step: i * 50, time: Double(i), values: values)
  }

  @Test func reportHasAChartPerFamilyEscapedTextAndGrids() throws {
    let directory = try temporaryDirectory()
    let path = directory + "/report.html"
    try RunReport.write(
      to: path, title: "run <script>alert(1)</script> & co", records: Self.records,
      grids: [(100, "samples/step-100.png"), (950, "samples/step-950.png"), (500, "samples/a b#.png")],
      summary: [("steps done", "950"), ("final loss/dm", "0.05 <ok>")],
      manifestJSON: "{\n  \"name\": \"a<b & \\\"c\\\"\"\n}")
    let html = try contents(path)
    checkBalanced(html)
    #expect(!html.contains("<script"))
    #expect(html.contains("run &lt;script&gt;alert(1)&lt;/script&gt; &amp; co"))
    #expect(html.contains("<pre>{\n  &quot;name&quot;: &quot;a&lt;b &amp; \\&quot;c\\&quot;&quot;\n}</pre>"))
    #expect(html.contains("<td>0.05 &lt;ok&gt;</td>"))
    #expect(html.contains("<img src=\"samples/step-950.png\""))
    #expect(html.contains("<img src=\"samples/step-100.png\""))
    #expect(html.contains("<img src=\"samples/a%20b%23.png\""))
    #expect(html.range(of: "step-950")!.lowerBound < html.range(of: "step-100")!.lowerBound)
    #expect(!html.contains("src=\"http") && !html.contains("<link") && !html.contains("url("))

    let charts = svgs(html)
    #expect(charts.count == 3)  // grad_norm, loss, lr
    #expect(html.components(separatedBy: "</svg>").count == 4)
    #expect(charts.map { $0.contains(">grad_norm</text>") } == [true, false, false])
    #expect(seriesPointCounts(charts[0]) == [1])
    #expect(charts[0].contains("<circle"))
    #expect(seriesPointCounts(charts[1]) == [20, 19])  // the NaN is left out
    #expect(charts[1].contains(">loss/dm<title>") && charts[1].contains(">loss/regression<title>"))
    #expect(seriesPointCounts(charts[2]) == [20])  // constant
    for chart in charts {
      #expect(chart.components(separatedBy: "text-anchor=\"end\"").count > 2)  // y tick labels
    }
    #expect(!FileManager.default.fileExists(atPath: directory + "/.report.html.tmp-\(getpid())"))
  }

  @Test func emptyReport() throws {
    let html = RunReport.html(title: "t", records: [], grids: [], summary: [], manifestJSON: "{}")
    checkBalanced(html)
    #expect(html.contains("No metrics recorded."))
    #expect(html.contains("No sample grids yet."))
    #expect(!html.contains("<svg"))
  }

  @Test func niceTicks() {
    let losses = NiceScale(data: [0.0312, 0.97], clampAtZero: false)
    #expect(losses.lower == 0 && losses.upper == 1 && losses.ticks.count == 6)
    #expect(losses.ticks.map(losses.label) == ["0", "0.2", "0.4", "0.6", "0.8", "1.0"])
    let steps = NiceScale(data: [0, 950], clampAtZero: true)
    #expect(steps.ticks.map(steps.label) == ["0", "200", "400", "600", "800", "1000"])
    let rates = NiceScale(data: [0, 2e-4], clampAtZero: true)
    #expect(rates.ticks.map(rates.label) == ["0", "5.0e-05", "1.0e-04", "1.5e-04", "2.0e-04"])
    let large = NiceScale(data: [0, 3.2e6], clampAtZero: true)
    #expect(large.ticks.map(large.label) == ["0", "1e+06", "2e+06", "3e+06", "4e+06"])
    let constant = NiceScale(data: [1e-4, 1e-4], clampAtZero: false)
    #expect(constant.lower < 1e-4 && constant.upper > 1e-4)
    #expect(Set(constant.ticks.map(constant.label)).count == constant.ticks.count)
    let single = NiceScale(data: [0], clampAtZero: true)
    #expect(single.lower == 0 && single.upper == 1)
    let empty = NiceScale(data: [], clampAtZero: false)
    #expect(empty.ticks.count >= 2)
    let extreme = NiceScale(data: [-1e308, 1e308], clampAtZero: false)
    #expect(extreme.ticks.count >= 2 && extreme.ticks.allSatisfy(\.isFinite))
  }
}
