import ArgumentParser
import CProcess
import DistillCore
import DistillDiffusion
import DistillPipeline
import Foundation

struct PrecomputeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "precompute",
    abstract: "Write noise-sample pairs of a manifest's teacher as safetensors shards.",
    discussion: """
      Builds only the manifest's teacher (and, for a text-to-image teacher, the captions of its data), samples it \
      from per-pair noise and writes OUT/shard-NNNNN.safetensors (tensors `noise` and `samples`, and `labels` or \
      `prompts`) and OUT/pairs.json (see docs/precompute.md). The `pairs` data source and the \
      `regression` loss read the folder. The same seed writes identical pairs whatever --shard-size or the thread \
      count. A folder holding other pairs is refused unless --force; one holding the same pairs is rewritten.
      """)

  @OptionGroup var options: ManifestOptions

  @Option(help: "The pairs folder to write.")
  var out: String

  @Option(help: "Number of pairs.")
  var count: Int

  @OptionGroup var sampling: SamplerOptions

  @Option(help: "Pairs per shard file.")
  var shardSize = 1024

  @Option(help: "Seed of the noise (default: the manifest's seed).")
  var seed: UInt64?

  @Flag(help: "Replace a folder holding other pairs.")
  var force = false

  @Flag(help: "Print no progress.")
  var quiet = false

  func run() throws {
    try runReportingErrors {
      let registry = RegistryHolder.shared.registry
      let folder = URL(fileURLWithPath: out).standardized.path
      // The manifest may be the student's, whose regression loss names this very folder.
      let manifest = try ManifestValidation.$pathsBeingWritten.withValue([folder]) { try options.load() }
      let (teacher, prompts) = try AssembledPipeline.buildTeacherWithPrompts(
        manifest, registry: registry, for: "precomputing pairs")
      let pairsOptions = PairsOptions(
        count: count, sampler: sampling.sampler, steps: sampling.steps, seed: seed ?? manifest.seed,
        shardSize: shardSize, batchSize: sampling.batchSize, clipSample: sampling.clipSample,
        guidance: sampling.guidance, prompts: prompts)
      let progress = ProgressReporter(style: quiet ? .silent : nil, phaseDelay: 0)
      let index = try writePairs(
        teacher: teacher, options: pairsOptions, folder: folder, replace: force
      ) { progress.phase("precompute: pairs", done: $0, total: $1) }
      if !quiet {
        print("\(index.count) pairs of \(index.sampleShape) in \(index.shards.count) shard(s): \(folder)")
        print("  teacher: \(index.teacher)")
        print("  sampler: \(index.sampler), \(index.steps) steps, seed \(index.seed)")
        if let prompts = index.prompts {
          print("  prompts: \(prompts.count) (pair i of prompt i mod \(prompts.count)), guidance \(index.guidance)")
        }
      }
    }
  }
}
