import ArgumentParser
import DistillPipeline

struct SchemaCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "schema",
    abstract: "Print the manifest's JSON Schema, generated from the registered components.")

  func run() throws {
    print(ManifestSchema.schema(RegistryHolder.shared.registry).text())
  }
}
