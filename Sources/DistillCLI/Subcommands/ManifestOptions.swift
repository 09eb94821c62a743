import ArgumentParser
import DistillPipeline

/// Options shared by the commands that read a manifest.
struct ManifestOptions: ParsableArguments {
  @Argument(help: "The manifest (JSON); see docs/manifest.md.")
  var manifest: String

  @Option(
    name: .customLong("set"), parsing: .unconditionalSingleValue,
    help: ArgumentHelp(
      "Override a manifest value, e.g. --set training.steps=200 (repeatable).",
      valueName: "PATH=VALUE"))
  var overrides: [String] = []

  func load() throws -> Manifest {
    try Manifest.load(
      path: manifest, overrides: overrides, registry: RegistryHolder.shared.registry)
  }
}
