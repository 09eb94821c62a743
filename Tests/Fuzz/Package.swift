// swift-tools-version: 6.1
import Foundation
import PackageDescription

// libFuzzer harnesses for Distillery's parsers. Not part of the main package, so `swift build`
// and `swift test` at the root never see them; `scripts/fuzz.sh` builds this package with
// `-sanitize=fuzzer,address` and runs each harness. See docs/reliability.md ("Fuzzing").
//
// Formatting style as in the root Package.swift: one section per target, sorted.

// The root package is two folders up; SwiftPM names a path dependency by its folder, so the
// name is computed rather than written ("main" in one checkout, "wt-fuzz" in another).
let distilleryRoot = URL(fileURLWithPath: #filePath)
  .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let distillery = distilleryRoot.lastPathComponent

// Each harness's `@main` hands its `LLVMFuzzerTestOneInput` to libFuzzer's driver (SwiftPM
// gives every executable a Swift entry point, so libFuzzer's own `main` is never linked).
// `-parse-as-library` keeps the harness's globals lazy rather than top-level code.
let harness: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

let package = Package(
  name: "DistilleryFuzz",
  platforms: [.macOS(.v14)],
  dependencies: [
    .package(path: distilleryRoot.path)
  ],
  targets: [
    // MARK: CFuzzerDriver (libFuzzer's driver entry, declared for Swift)
    .target(
      name: "CFuzzerDriver"
    ),

    // MARK: FuzzSupport (the driver call, scratch files for the readers that take a path)
    .target(
      name: "FuzzSupport",
      dependencies: ["CFuzzerDriver"]
    ),

    // MARK: fuzz-denoiser-json
    .executableTarget(
      name: "fuzz-denoiser-json",
      dependencies: [
        "FuzzSupport",
        .product(name: "DistillCore", package: distillery),
        .product(name: "DistillDiffusion", package: distillery),
      ],
      swiftSettings: harness
    ),

    // MARK: fuzz-image (targets png and jpeg of scripts/fuzz.sh)
    .executableTarget(
      name: "fuzz-image",
      dependencies: [
        "FuzzSupport",
        .product(name: "ImageIO", package: distillery),
      ],
      swiftSettings: harness
    ),

    // MARK: fuzz-json
    .executableTarget(
      name: "fuzz-json",
      dependencies: [
        "FuzzSupport",
        .product(name: "BuiltInComponents", package: distillery),
        .product(name: "DistillCore", package: distillery),
        .product(name: "DistillPipeline", package: distillery),
      ],
      swiftSettings: harness
    ),

    // MARK: fuzz-safetensors
    .executableTarget(
      name: "fuzz-safetensors",
      dependencies: [
        "FuzzSupport",
        .product(name: "DistillCore", package: distillery),
      ],
      swiftSettings: harness
    ),

    // MARK: fuzz-unet-config
    .executableTarget(
      name: "fuzz-unet-config",
      dependencies: [
        "FuzzSupport",
        .product(name: "DistillNN", package: distillery),
      ],
      swiftSettings: harness
    ),
  ]
)
