import ArgumentParser
import DistillPipeline

struct ComponentsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "components",
    abstract: "List the registered components with their parameters and defaults.")

  @Option(help: "Only this kind.")
  var kind: ComponentKind?

  @Flag(help: "Markdown, as in the Components section of docs/manifest.md.")
  var markdown = false

  func run() throws {
    try runReportingErrors {
      let registry = RegistryHolder.shared.registry
      let kinds = kind.map { [$0] } ?? ComponentKind.allCases
      print(ComponentListing.text(registry, kinds: kinds, markdown: markdown), terminator: "")
    }
  }
}
