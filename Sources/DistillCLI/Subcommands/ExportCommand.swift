import ArgumentParser
import DistillPipeline

struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Write a run's trained student as a diffusers folder (UNet2DModel + DDIMScheduler).",
    discussion: """
      The folder holds config.json and diffusion_pytorch_model.safetensors (diffusers' UNet2DModel.from_pretrained \
      reads them) and scheduler_config.json, a DDIMScheduler that samples the student in its own steps \
      (DDIMScheduler.from_pretrained). `pipeline generate --student DIR` samples it without the run, the teacher or \
      any other file. Only a "denoiser" generator with a UNet network can be exported. Exit status 2 for a run that \
      cannot be exported or an --out that holds files.
      """)

  @Option(name: .customLong("run"), help: "The run folder.")
  var runFolder: String

  @Option(help: "The folder to write (new or empty).")
  var out: String

  func run() throws {
    try runReportingErrors {
      let summary = try StudentExport.export(run: runFolder, to: out)
      print(
        "wrote the student (\(summary.parameterCount) parameters, \(summary.prediction.rawValue) prediction, "
          + "timesteps \(summary.timesteps)) to \(out)")
    }
  }
}
