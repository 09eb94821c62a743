import ArgumentParser
import DistillCore
import DistillPipeline

struct ComponentsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "components",
    abstract: "List the registered components with their parameters and defaults.")

  @Option(help: "Only this kind: \(ComponentKind.allCases.map(\.rawValue).joined(separator: ", ")).")
  var kind: String?

  @Flag(help: "Markdown, as in the Components section of docs/manifest.md.")
  var markdown = false

  func run() throws {
    try runReportingErrors {
      let registry = RegistryHolder.shared.registry
      var kinds = ComponentKind.allCases
      if let kind {
        guard let chosen = ComponentKind(rawValue: kind) else {
          throw DistillError.invalidValue(
            location: "--kind", expected: "one of \(ComponentKind.allCases.map(\.rawValue).joined(separator: ", "))",
            found: "\"\(kind)\"")
        }
        kinds = [chosen]
      }
      print(ComponentListing.text(registry, kinds: kinds, markdown: markdown), terminator: "")
    }
  }
}

struct SchemaCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "schema",
    abstract: "Print the manifest's JSON Schema, generated from the registered components.")

  func run() throws {
    print(ManifestSchema.schema(RegistryHolder.shared.registry).text())
  }
}
