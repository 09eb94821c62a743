import ArgumentParser
import DistillDiffusion
import Foundation

/// `pipeline predict`: the teacher's raw network on a fixture-layout input file.
struct PredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Run a teacher's raw network on `sample` and `timestep` and write `output`.",
    discussion: """
      The input is a safetensors file with `sample` ([N, ...]) and `timestep` (a scalar, [1] or \
      [N]), the layout of the diffusers fixtures; the output file holds `output` (float32). When \
      the input also holds an `output` tensor (e.g. written by diffusers), the largest absolute \
      difference from it is printed: the check of a converted checkpoint.
      TEACHER is a Distillery denoiser folder (denoiser.json), a diffusers UNet2DModel folder \
      (config.json + diffusion_pytorch_model.safetensors) or a diffusers pipeline folder (unet/). \
      Exit status 2 for bad input (missing file, bad weights, unsupported config), 1 otherwise.
      """)

  @Option(help: "The teacher folder.")
  var teacher: String

  @Option(help: "A safetensors file with `sample` and `timestep`.")
  var input: String

  @Option(help: "The safetensors file to write (`output`); replaced atomically if it exists.")
  var output: String

  func run() throws {
    try runReportingErrors {
      let report = try predict(teacherPath: teacher, inputPath: input, outputPath: output)
      print("teacher: \(report.teacherSummary)")
      let distinct = Array(Set(report.timesteps)).sorted()
      let timesteps = distinct.count == 1 ? "\(distinct[0])" : "\(report.timesteps)"
      print("input: sample \(report.inputShape), timesteps \(timesteps)")
      print("wrote \(output): output \(report.outputShape)")
      if let difference = report.maxAbsDifferenceFromReference {
        print("max |output - reference output| = \(difference)")
      }
    }
  }
}
