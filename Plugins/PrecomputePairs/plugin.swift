import Foundation
import PackagePlugin

/// `swift package --allow-writing-to-package-directory precompute-pairs MANIFEST --out DIR --count N ...`
///
/// Builds the `pipeline` tool in release (the teacher runs thousands of network calls, and
/// `context.tool(named:)` would hand back a debug build 10-50x slower), then runs
/// `pipeline precompute` with the arguments as given. Relative paths are taken from the
/// package directory.
@main
struct PrecomputePairs: CommandPlugin {
  func performCommand(context: PluginContext, arguments: [String]) async throws {
    // SwiftPM passes a literal `--` through; `pipeline` would read it as "no more options".
    let forwarded = arguments.filter { $0 != "--" }
    if forwarded.isEmpty || forwarded.contains("--help") || forwarded.contains("-h") {
      print(
        """
        usage: swift package --allow-writing-to-package-directory precompute-pairs MANIFEST --out DIR --count N
                 [--steps 50] [--sampler ddim|euler|heun|ddpm] [--shard-size 1024] [--seed S] [--batch-size B]
                 [--clip-sample] [--guidance S] [--set PATH=VALUE ...] [--force]
        Builds `pipeline` in release and runs `pipeline precompute` (docs/precompute.md). For a text-to-image
        teacher the manifest's captions give the prompts: the pairs are (noise, latent, prompt) triples.
        """)
      if forwarded.isEmpty { throw PluginError("no arguments: give a manifest, --out and --count") }
      return
    }

    Diagnostics.progress("building pipeline (release)...")
    let result = try packageManager.build(
      .product("pipeline"), parameters: .init(configuration: .release, logging: .concise))
    guard result.succeeded else {
      Diagnostics.error(result.logText)
      throw PluginError("building pipeline in release failed (log above)")
    }
    // builtArtifacts also lists the debug host build of the tool; take the release `pipeline`.
    guard
      let tool = result.builtArtifacts.first(where: {
        $0.kind == .executable && $0.url.lastPathComponent == "pipeline" && $0.url.path.contains("/release/")
      })
    else {
      throw PluginError(
        "the release build listed no `pipeline` executable (found: \(result.builtArtifacts.map(\.url.path)))")
    }

    let process = Process()
    process.executableURL = tool.url
    process.arguments = ["precompute"] + forwarded
    process.currentDirectoryURL = context.package.directoryURL
    // Standard output and error are inherited: `pipeline` prints its progress there.
    try process.run()
    process.waitUntilExit()
    guard process.terminationReason == .exit, process.terminationStatus == 0 else {
      let status = process.terminationStatus
      let meaning = status == 2 ? "bad input (pipeline printed why)" : "a runtime failure"
      throw PluginError("pipeline precompute exited with status \(status): \(meaning)")
    }
  }
}

struct PluginError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
