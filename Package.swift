// swift-tools-version: 6.1
import PackageDescription

// Formatting style:
//  - One section for each target and its test target
//  - Sections are sorted by layer, lowest first
//  - Dependencies are listed on separate lines, but for the one-line built-in components

/// A built-in component: the target `name` in Sources/Components/`kind`/`name`, which imports
/// DistillCore, DistillPipeline and `dependencies`.
func component(_ name: String, in kind: String, _ dependencies: [Target.Dependency]) -> Target {
  .target(
    name: name, dependencies: ["DistillCore", "DistillPipeline"] + dependencies, path: "Sources/Components/\(kind)/\(name)")
}

/// The built-in components, one target each (`component(_:in:_:)`); BuiltInComponents lists them.
let builtInComponents: [Target.Dependency] = [
  "AdversarialDistillation",
  "AutoencoderGenerator",
  "AutoencoderLoss",
  "CaptionsData",
  "ConsistencyDistillation",
  "ConsistencyGenerator",
  "DenoiserGenerator",
  "DenoisingLoss",
  "DistributionMatching",
  "DMD2GAN",
  "EnergyDistance",
  "FeatureDistances",
  "FolderTeacher",
  "GaussianMixtureData",
  "GaussianMixtureTeacher",
  "ImageFolderData",
  "KnowledgeDistillation",
  "MLPGenerator",
  "ModeCoverage",
  "PairsData",
  "ProgressiveDistillation",
  "Regression",
  "ShapesData",
  "TensorData",
  "TeacherScore",
  "TeacherStudentDistance",
  "TrainedScore",
]

let package = Package(
  name: "Distillery",
  platforms: [.macOS(.v14)],
  products: [
    .library(name: "BuiltInComponents", targets: ["BuiltInComponents"]),
    .library(name: "DistillCLI", targets: ["DistillCLI"]),
    .library(name: "DistillCore", targets: ["DistillCore"]),
    .library(name: "DistillDiffusion", targets: ["DistillDiffusion"]),
    .library(name: "DistillDistributed", targets: ["DistillDistributed"]),
    .library(name: "DistillNN", targets: ["DistillNN"]),
    .library(name: "DistillPipeline", targets: ["DistillPipeline"]),
    .library(name: "ImageIO", targets: ["ImageIO"]),
    .executable(name: "pipeline", targets: ["pipeline"]),
    .plugin(name: "PrecomputePairs", targets: ["PrecomputePairs"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    // MARK: CBLAS
    .systemLibrary(
      name: "CBLAS",
      pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev"])]
    ),

    // MARK: CKernels
    .target(
      name: "CKernels"
    ),

    // MARK: DistillCore
    .target(
      name: "DistillCore",
      dependencies: [
        .target(name: "CBLAS", condition: .when(platforms: [.linux])),
        "CKernels",
      ]
    ),
    .testTarget(
      name: "DistillCoreTests",
      dependencies: [
        .target(name: "CBLAS", condition: .when(platforms: [.linux])),
        "DistillCore",
        "DistillTestSupport",
      ],
      resources: [.copy("Fixtures")]
    ),

    // MARK: DistillTestSupport (shared by the test targets)
    .target(
      name: "DistillTestSupport",
      dependencies: ["DistillCore"],
      path: "Tests/DistillTestSupport"
    ),

    // MARK: DistillNN
    .target(
      name: "DistillNN",
      dependencies: ["DistillCore"]
    ),
    .testTarget(
      name: "DistillNNTests",
      dependencies: ["DistillNN", "DistillTestSupport"],
      exclude: ["Fixtures"]
    ),

    // MARK: DistillText (text encoders' tokenizers)
    .target(
      name: "DistillText",
      dependencies: ["DistillCore", "DistillNN"]
    ),
    .testTarget(
      name: "DistillTextTests",
      dependencies: ["DistillText", "DistillTestSupport"]
    ),

    // MARK: DistillDiffusion
    .target(
      name: "DistillDiffusion",
      dependencies: [
        "DistillCore",
        "DistillNN",
        "DistillText",
      ]
    ),
    .testTarget(
      name: "DistillDiffusionTests",
      dependencies: ["DistillDiffusion", "DistillNN", "DistillTestSupport"],
      resources: [.copy("Fixtures")]
    ),

    // MARK: ImageIO
    .systemLibrary(
      name: "CPNG",
      pkgConfig: "libpng",
      providers: [.apt(["libpng-dev"])]
    ),
    .systemLibrary(
      name: "CJPEG",
      pkgConfig: "libjpeg",
      providers: [.apt(["libjpeg-dev"])]
    ),
    // libpng and libjpeg report errors by longjmp, which must never cross Swift frames:
    // CImageSupport holds every setjmp and hands ImageIO plain status codes. zlib (libpng's
    // own dependency) reads the gzip-compressed IDX files of the MNIST family.
    .target(
      name: "CImageSupport",
      dependencies: [
        "CJPEG",
        "CPNG",
      ],
      linkerSettings: [.linkedLibrary("z")]
    ),
    .target(
      name: "ImageIO",
      dependencies: [
        "CImageSupport",
        "DistillCore",
      ]
    ),
    .testTarget(
      name: "ImageIOTests",
      dependencies: ["DistillCore", "ImageIO"],
      exclude: ["make_image_fixtures.py"],
      resources: [.copy("Fixtures")]
    ),

    // MARK: DistillDistributed
    // Open MPI is loaded at run time (dlopen), so the package builds and runs single-process
    // on machines without it; see docs/distributed.md.
    .target(
      name: "CMPIShim",
      linkerSettings: [
        .linkedLibrary("dl", .when(platforms: [.linux]))
      ]
    ),
    .target(
      name: "DistillDistributed",
      dependencies: [
        "CMPIShim",
        "DistillCore",
      ]
    ),
    .testTarget(
      name: "DistillDistributedTests",
      dependencies: [
        "DistillCore",
        "DistillDistributed",
        "DistillTestSupport",
      ]
    ),

    // MARK: CProcess (signals, terminals, fsync for the trainer)
    .target(
      name: "CProcess"
    ),

    // MARK: DistillPipeline
    .target(
      name: "DistillPipeline",
      dependencies: [
        "CProcess",
        "DistillDiffusion",
        "DistillDistributed",
        "DistillNN",
        "ImageIO",
      ]
    ),
    .testTarget(
      name: "DistillPipelineTests",
      dependencies: ["DistillCore", "DistillPipeline", "DistillTestSupport", "ImageIO"]
    ),

    // MARK: Components (one target each; BuiltInComponents lists them)
    component("FolderTeacher", in: "Teachers", ["DistillDiffusion"]),
    component("GaussianMixtureTeacher", in: "Teachers", ["DistillDiffusion"]),
    component("ConsistencyGenerator", in: "Generators", ["DistillDiffusion"]),
    component("DenoiserGenerator", in: "Generators", ["DistillDiffusion"]),
    component("MLPGenerator", in: "Generators", ["DistillNN"]),
    component("AutoencoderGenerator", in: "Generators", ["DistillNN"]),
    component("TeacherScore", in: "Scores", ["DistillDiffusion"]),
    component("TrainedScore", in: "Scores", ["DistillDiffusion"]),
    component("ConsistencyDistillation", in: "Losses", ["DistillDiffusion", "DistillNN"]),
    component("DenoisingLoss", in: "Losses", ["DistillDiffusion"]),
    component("AutoencoderLoss", in: "Losses", ["DistillNN"]),
    component("AdversarialDistillation", in: "Losses", ["DistillDiffusion", "DistillNN"]),
    component("DMD2GAN", in: "Losses", ["DistillDiffusion", "DistillNN"]),
    component("DistributionMatching", in: "Losses", ["DistillDiffusion"]),
    component("KnowledgeDistillation", in: "Losses", ["DistillDiffusion", "DistillNN"]),
    component("ProgressiveDistillation", in: "Losses", ["DistillDiffusion"]),
    component("Regression", in: "Losses", ["DistillDiffusion", "DistillNN"]),
    component("GaussianMixtureData", in: "Data", ["DistillDiffusion"]),
    component("CaptionsData", in: "Data", ["DistillDiffusion", "ImageIO"]),
    component("ImageFolderData", in: "Data", ["ImageIO"]),
    component("TensorData", in: "Data", ["ImageIO"]),
    component("ShapesData", in: "Data", []),
    component("PairsData", in: "Data", ["DistillDiffusion"]),
    component("FeatureDistances", in: "Metrics", []),
    component("EnergyDistance", in: "Metrics", []),
    component("ModeCoverage", in: "Metrics", ["DistillDiffusion"]),
    component("TeacherStudentDistance", in: "Metrics", ["DistillDiffusion", "DistillNN"]),
    .target(
      name: "BuiltInComponents",
      dependencies: ["DistillPipeline"] + builtInComponents,
      path: "Sources/Components/BuiltIn"
    ),
    .testTarget(
      name: "ComponentsTests",
      dependencies: [
        "BuiltInComponents",
        "DistillDiffusion",
        "DistillNN",
        "DistillTestSupport",
        "ImageIO",
      ] + builtInComponents,
      exclude: ["Fixtures"]
    ),

    // MARK: DistillCLI (the commands; a user's package starts them with extra components)
    .target(
      name: "DistillCLI",
      dependencies: [
        "BuiltInComponents",
        .target(name: "CBLAS", condition: .when(platforms: [.linux])),
        "CProcess",
        "DistillCore",
        "DistillDiffusion",
        "DistillDistributed",
        "DistillNN",
        "DistillPipeline",
        "ImageIO",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    .testTarget(
      name: "DistillCLITests",
      dependencies: [
        "DistillCLI",
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
        "DistillTestSupport",
        "ImageIO",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),

    // MARK: pipeline
    .executableTarget(
      name: "pipeline",
      dependencies: [
        "DistillCLI"
      ]
    ),

    // MARK: mpi-selftest (run under mpirun by DistillDistributedTests)
    .executableTarget(
      name: "mpi-selftest",
      dependencies: [
        "DistillCore",
        "DistillDistributed",
      ]
    ),

    // MARK: PrecomputePairs (command plugin: builds pipeline in release, runs pipeline precompute)
    .plugin(
      name: "PrecomputePairs",
      capability: .command(
        intent: .custom(
          verb: "precompute-pairs",
          description: "Write noise-sample pair shards of a manifest's teacher (pipeline precompute, built in release)."
        ),
        permissions: [
          .writeToPackageDirectory(reason: "To write the pairs folder given by --out (often inside the package).")
        ]
      )
      // No dependency on `pipeline`: the plugin builds it in release itself, and a dependency
      // would add a debug build of the whole tool before every cold run.
    ),
  ]
)
