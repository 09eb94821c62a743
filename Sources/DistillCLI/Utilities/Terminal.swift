import CProcess
import Foundation

/// Writes `message` and a newline to standard error.
func printError(_ message: String) {
  printPartial(message + "\n")
}

/// Writes `text` to standard error as it is: a progress line redrawn with `\r`.
func printPartial(_ text: String) {
  FileHandle.standardError.write(Data(text.utf8))
}

/// Whether standard error is a terminal, where progress redraws one line in place.
var standardErrorIsTerminal: Bool { distill_stderr_is_terminal() != 0 }
