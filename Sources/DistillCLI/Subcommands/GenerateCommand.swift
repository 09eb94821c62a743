import ArgumentParser
import DistillCore
import DistillPipeline

struct GenerateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "generate",
    abstract: "Sample an exported student folder (from `pipeline export`) on its own.",
    discussion: """
      Draws standard normal noise from --seed as `pipeline sample` does and runs the folder's DDIM steps. A .png \
      output is a grid; a .safetensors output holds "samples" [N, C, H, W] in [-1, 1].
      """)

  @Option(help: "The exported student folder.")
  var student: String

  @Option(help: "How many samples (with --noise: the noise's rows).")
  var count: Int?

  @Option(help: "A safetensors file whose \"noise\" [N, C, H, W] replaces the seed's draws.")
  var noise: String?

  @Option(help: "The noise seed.")
  var seed: UInt64 = 0

  @Option(
    name: .customLong("class"),
    help: "The class of every sample, for a class-conditional student (default: sample i of class i mod classes).")
  var classLabel: Int?

  @Option(help: "The output file: .png or .safetensors.")
  var out: String

  func validate() throws {
    guard (count == nil) != (noise == nil) else { throw ValidationError("give --count or --noise, not both") }
    if let count, count < 1 { throw ValidationError("--count must be at least 1") }
  }

  func run() throws {
    try runReportingErrors {
      let given = try noise.map { try SafetensorsFile.read(contentsOf: $0).tensor("noise") }
      let samples = try StudentExport.sample(
        folder: student, count: count ?? 0, seed: seed, noise: given, classLabel: classLabel)
      try writeSamples(samples, to: out, metadata: ["student": student, "seed": String(seed)])
      print("wrote \(samples.shape[0]) samples to \(out)")
    }
  }
}
