// swift-tools-version: 6.1
import PackageDescription

// A package of your own components that starts Distillery's `pipeline` CLI with them.
// Copy this folder, rename the target and the loss, and point the dependency at Distillery.

let package = Package(
  name: "MyComponents",
  platforms: [.macOS(.v14)],
  dependencies: [
    // A checkout beside this package; or .package(url: "https://<host>/<owner>/distillery.git", branch: "main").
    // The package: "distillery" below is the last component of that path or URL, lowercased.
    .package(path: "../distillery")
  ],
  targets: [
    // MARK: MomentMatching (the loss)
    .target(
      name: "MomentMatching",
      dependencies: [
        .product(name: "DistillCore", package: "distillery"),
        .product(name: "DistillPipeline", package: "distillery"),
      ]
    ),
    .testTarget(
      name: "MomentMatchingTests",
      dependencies: [
        "MomentMatching",
        .product(name: "BuiltInComponents", package: "distillery"),
      ]
    ),

    // MARK: my-pipeline (the CLI with the built-in components plus yours)
    .executableTarget(
      name: "my-pipeline",
      dependencies: [
        "MomentMatching",
        .product(name: "DistillCLI", package: "distillery"),
      ]
    ),
  ]
)
