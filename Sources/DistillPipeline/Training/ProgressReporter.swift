import CProcess
import Foundation

/// Shows training progress on standard error: on a terminal one line redrawn in place
/// (step, a bar, the losses, steps/s and the time left); otherwise a plain line every
/// tenth of the run (and at the end), so logs stay readable.
public final class ProgressReporter {
  public enum Style: Sendable {
    case terminal, lines, silent
  }

  public let style: Style
  private var total = 0
  private var first = 0
  private var started = ContinuousClock.now
  private var lastDraw = ContinuousClock.now
  private var lastLine = -1
  private var phaseLabel = ""
  private var phaseStarted = ContinuousClock.now
  private var phaseShown = -1
  private let phaseDelay: Double
  private let write: (String) -> Void

  /// `style` defaults to `.terminal` when standard error is a terminal, `.lines` otherwise;
  /// `phaseDelay` is how long a ``phase(_:done:total:)`` runs before it is shown (seconds).
  public init(style: Style? = nil, phaseDelay: Double = 2, write: ((String) -> Void)? = nil) {
    self.phaseDelay = phaseDelay
    self.style = style ?? (distill_stderr_is_terminal() != 0 ? .terminal : .lines)
    self.write = write ?? { FileHandle.standardError.write(Data($0.utf8)) }
  }

  public func begin(total: Int, from step: Int) {
    self.total = total
    first = step
    started = .now
    if style != .silent {
      write(step > 0 ? "resuming at step \(step) of \(total)\n" : "training for \(total) steps\n")
    }
  }

  public func update(step: Int, values: [String: Double]) {
    guard style != .silent else { return }
    let now = ContinuousClock.now
    let elapsed = seconds(now - started)
    let rate = elapsed > 0 ? Double(step - first) / elapsed : 0
    let remaining = rate > 0 ? Double(total - step) / rate : 0
    let losses = values.filter { $0.key.hasPrefix("loss/") || $0.key.hasPrefix("aux/") }
      .sorted { $0.key < $1.key }
      .map { "\($0.key.split(separator: "/").last!) \(String(format: "%.4g", $0.value))" }
      .joined(separator: " ")
    let head = "step \(step)/\(total)"
    let tail = String(format: "%.1f steps/s, ETA %@", rate, duration(remaining))
    switch style {
    case .terminal:
      guard step == total || seconds(now - lastDraw) >= 0.1 else { return }
      lastDraw = now
      let width = 24
      let filled = total > 0 ? width * step / total : width
      let bar =
        String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
      write("\r\u{1B}[K\(head) [\(bar)] \(losses) | \(tail)")
    case .lines:
      let tenth = max(1, total / 10)
      guard step == total || step % tenth == 0, step != lastLine else { return }
      lastLine = step
      write("\(head): \(losses) | \(tail)\n")
    case .silent:
      return
    }
  }

  /// Progress of a long phase between training steps (an evaluation's sampling): `done` of
  /// `total` units. Nothing is shown for a phase that ends within `phaseDelay`; after that, on
  /// a terminal one line redrawn in place, otherwise a line per tenth.
  public func phase(_ label: String, done: Int, total: Int) {
    guard style != .silent, total > 0 else { return }
    let now = ContinuousClock.now
    if label != phaseLabel {
      phaseLabel = label
      phaseStarted = now
      phaseShown = -1
    }
    let elapsed = seconds(now - phaseStarted)
    guard elapsed >= phaseDelay || (phaseShown >= 0 && done == total) else { return }
    let remaining = done > 0 ? elapsed * Double(total - done) / Double(done) : 0
    let text =
      "\(label) \(done)/\(total) | \(duration(elapsed)) elapsed, ETA \(duration(remaining))"
    switch style {
    case .terminal:
      guard done == total || seconds(now - lastDraw) >= 0.1 else { return }
      lastDraw = now
      write((phaseShown < 0 ? "\n" : "\r\u{1B}[K") + text + (done == total ? "\n" : ""))
      phaseShown = done
    case .lines:
      let tenth = done * 10 / total
      guard tenth != phaseShown else { return }
      phaseShown = tenth
      write(text + "\n")
    case .silent:
      return
    }
  }

  public func finish() {
    if style == .terminal { write("\n") }
  }

  private func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
  }

  private func duration(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600
      ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60)
      : String(format: "%d:%02d", t / 60, t % 60)
  }
}
