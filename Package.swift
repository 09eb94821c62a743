// swift-tools-version: 6.1
import PackageDescription

// Formatting style:
//  - One section for each target and its test target
//  - Sections are sorted by layer, lowest first
//  - Dependencies are listed on separate lines

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
      dependencies: ["DistillCore", "DistillTestSupport"],
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
      dependencies: [
        "CKernels",
        "DistillCore",
      ]
    ),
    .testTarget(
      name: "DistillNNTests",
      dependencies: ["DistillNN", "DistillTestSupport"],
      exclude: ["Fixtures"]
    ),

    // MARK: DistillDiffusion
    .target(
      name: "DistillDiffusion",
      dependencies: ["DistillNN"]
    ),
    .testTarget(
      name: "DistillDiffusionTests",
      dependencies: ["DistillDiffusion", "DistillTestSupport"],
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
      dependencies: ["DistillPipeline", "DistillTestSupport"]
    ),

    // MARK: Components (one target each; BuiltInComponents lists them)
    .target(
      name: "FolderTeacher",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Teachers/FolderTeacher"
    ),
    .target(
      name: "GaussianMixtureTeacher",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Teachers/GaussianMixtureTeacher"
    ),
    .target(
      name: "ConsistencyGenerator",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Generators/ConsistencyGenerator"
    ),
    .target(
      name: "DenoiserGenerator",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Generators/DenoiserGenerator"
    ),
    .target(
      name: "MLPGenerator",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillNN",
        "DistillPipeline",
      ],
      path: "Sources/Components/Generators/MLPGenerator"
    ),
    .target(
      name: "TeacherScore",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Scores/TeacherScore"
    ),
    .target(
      name: "TrainedScore",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Scores/TrainedScore"
    ),
    .target(
      name: "ConsistencyDistillation",
      dependencies: [
        "ConsistencyGenerator",
        "DistillCore",
        "DistillDiffusion",
        "DistillNN",
        "DistillPipeline",
      ],
      path: "Sources/Components/Losses/ConsistencyDistillation"
    ),
    .target(
      name: "DenoisingLoss",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Losses/DenoisingLoss"
    ),
    .target(
      name: "AdversarialDistillation",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillNN",
        "DistillPipeline",
      ],
      path: "Sources/Components/Losses/AdversarialDistillation"
    ),
    .target(
      name: "DMD2GAN",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillNN",
        "DistillPipeline",
      ],
      path: "Sources/Components/Losses/DMD2GAN"
    ),
    .target(
      name: "DistributionMatching",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Losses/DistributionMatching"
    ),
    .target(
      name: "KnowledgeDistillation",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillNN",
        "DistillPipeline",
      ],
      path: "Sources/Components/Losses/KnowledgeDistillation"
    ),
    .target(
      name: "ProgressiveDistillation",
      dependencies: [
        "DenoiserGenerator",
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Losses/ProgressiveDistillation"
    ),
    .target(
      name: "Regression",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillNN",
        "DistillPipeline",
      ],
      path: "Sources/Components/Losses/Regression"
    ),
    .target(
      name: "GaussianMixtureData",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Data/GaussianMixtureData"
    ),
    .target(
      name: "ImageFolderData",
      dependencies: [
        "DistillCore",
        "DistillPipeline",
        "ImageIO",
      ],
      path: "Sources/Components/Data/ImageFolderData"
    ),
    .target(
      name: "TensorData",
      dependencies: [
        "DistillCore",
        "DistillPipeline",
      ],
      path: "Sources/Components/Data/TensorData"
    ),
    .target(
      name: "ShapesData",
      dependencies: [
        "DistillCore",
        "DistillPipeline",
      ],
      path: "Sources/Components/Data/ShapesData"
    ),
    .target(
      name: "PairsData",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Data/PairsData"
    ),
    .target(
      name: "FeatureDistances",
      dependencies: [
        "DistillCore",
        "DistillPipeline",
      ],
      path: "Sources/Components/Metrics/FeatureDistances"
    ),
    .target(
      name: "EnergyDistance",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
      ],
      path: "Sources/Components/Metrics/EnergyDistance"
    ),
    .target(
      name: "ModeCoverage",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillPipeline",
        "GaussianMixtureData",
      ],
      path: "Sources/Components/Metrics/ModeCoverage"
    ),
    .target(
      name: "TeacherStudentDistance",
      dependencies: [
        "DistillCore",
        "DistillDiffusion",
        "DistillNN",
        "DistillPipeline",
      ],
      path: "Sources/Components/Metrics/TeacherStudentDistance"
    ),
    .target(
      name: "BuiltInComponents",
      dependencies: [
        "AdversarialDistillation",
        "ConsistencyDistillation",
        "ConsistencyGenerator",
        "DenoiserGenerator",
        "DenoisingLoss",
        "DistillPipeline",
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
      ],
      path: "Sources/Components/BuiltIn"
    ),
    .testTarget(
      name: "ComponentsTests",
      dependencies: [
        "BuiltInComponents",
        "DistillTestSupport",
      ],
      exclude: ["Fixtures"]
    ),

    // MARK: DistillCLI (the commands; a user's package starts them with extra components)
    .target(
      name: "DistillCLI",
      dependencies: [
        "BuiltInComponents",
        "DistillCore",
        "DistillDiffusion",
        "DistillDistributed",
        "DistillNN",
        "DistillPipeline",
        "ImageIO",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
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
    // CImageSupport holds every setjmp and hands ImageIO plain status codes.
    .target(
      name: "CImageSupport",
      dependencies: [
        "CJPEG",
        "CPNG",
      ]
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
      dependencies: ["ImageIO"],
      exclude: ["make_image_fixtures.py"],
      resources: [.copy("Fixtures")]
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
