import BuiltInComponents
import DistillCore
import DistillNN
import DistillPipeline
import DistillTestSupport
import Foundation
import Testing

/// The `autoencoder` generator and loss: a KL autoencoder trained on data, written as a
/// diffusers `vae/` folder (the first stage of a latent teacher).
@Suite struct AutoencoderTrainingTests {
  static func manifest(output: String, steps: Int = 60, generator: String? = nil, loss: String? = nil) -> JSONValue {
    let config = """
      {"block_out_channels": [16, 32], "latent_channels": 4, "norm_num_groups": 8, "scaling_factor": 0.5}
      """
    let text = """
      {"name": "vae", "seed": 3,
       "data": {"type": "shapes", "size": 16, "classes": 4},
       "generator": \(generator ?? "{\"type\": \"autoencoder\", \"config\": \(config)}"),
       "losses": [\(loss ?? "{\"type\": \"autoencoder\", \"kl\": 1e-4}")],
       "optimizer": {"type": "adam", "lr": 0.002},
       "training": {"steps": \(steps), "batchSize": 16, "checkpointEvery": \(steps), "logEvery": 5},
       "evaluation": {"every": \(steps), "samples": 16, "gridSize": 16, "metrics": []},
       "output": \(JSONValue.quoted(output))}
      """
    return try! JSONValue.parse(Data(text.utf8), source: "vae")
  }

  @Test func trainsAndWritesAFolderThatLoadsAsTheSameAutoencoder() throws {
    let base = temporaryFolder()
    let trainer = try train(Self.manifest(output: base + "/vae"))
    let records = try MetricsLog.read(path: base + "/vae/metrics.jsonl")
    let errors = records.compactMap { $0.values["autoencoder/reconstruction"] }
    let kl = records.compactMap { $0.values["autoencoder/kl"] }
    // The squared error of the shapes (values in [-1, 1], about 0.5 on average for a zero
    // output) falls to well under half of the first logged step's within 60 steps.
    #expect(errors.count >= 10 && kl.count == errors.count)
    #expect(errors.last! < 0.5 * errors.first!, "reconstruction error \(errors.first!) -> \(errors.last!)")
    #expect(kl.allSatisfy { $0.isFinite && $0 >= 0 })

    // vae/ is a diffusers folder: its config reads back as the trained one and its weights
    // encode and decode as the trained network does, number for number (both without
    // gradients: recorded attention sums in another order than the fused kernel).
    let generator = try #require(trainer.pipeline.generator as? any AutoencodingGenerator)
    let loaded = try AutoencoderKL.load(folder: base + "/vae/vae")
    #expect(loaded.config == generator.autoencoder.config)
    #expect(loaded.config.scalingFactor == 0.5)
    let x = testTensor([2, 3, 16, 16])
    generator.autoencoder.eval()
    let expected = withoutGradients { generator.autoencoder.encode(x).mean }
    let actual = withoutGradients { loaded.encode(x).mean }
    #expect(expected.scalars == actual.scalars)
    let z = testTensor([2, 4, 8, 8], seed: 5)
    #expect(withoutGradients { generator.autoencoder.decode(z) }.scalars == withoutGradients { loaded.decode(z) }.scalars)
    // The generator decodes noise of the latent shape to images of the data's shape.
    #expect(generator.noiseShape == [4, 8, 8] && generator.sampleShape == [3, 16, 16])
  }

  @Test func aRunStartsFromAVAEFolder() throws {
    let base = temporaryFolder()
    try train(Self.manifest(output: base + "/first", steps: 10))
    let generator = "{\"type\": \"autoencoder\", \"init\": \(JSONValue.quoted(base + "/first/vae"))}"
    let second = try train(Self.manifest(output: base + "/second", steps: 10, generator: generator))
    let first = try AutoencoderKL.load(folder: base + "/first/vae")
    #expect((second.pipeline.generator as? any AutoencodingGenerator)?.autoencoder.config == first.config)
  }

  @Test(arguments: [
    ("{\"type\": \"autoencoder\"}", "generator: expected exactly one of \"config\""),
    (
      "{\"type\": \"autoencoder\", \"config\": {\"block_out_channels\": [8, 16, 32, 32, 32, 32], \"norm_num_groups\": 8}}",
      "generator: expected data images [3, H, W] with H and W multiples of 32"
    ),
    ("{\"type\": \"autoencoder\", \"config\": {\"block_out_channels\": [12], \"norm_num_groups\": 8}}", "generator.config: norm_num_groups"),
    ("{\"type\": \"mlp\"}", "generator.type: expected an \"autoencoder\" generator to train"),
  ])
  func badEntriesNameTheirPath(generator: String, message: String) throws {
    let json = Self.manifest(output: temporaryFolder() + "/out", steps: 1, generator: generator)
    let registry = ComponentRegistry.standard()
    let manifest = try Manifest.decode(json, source: "m.json", baseDirectory: "/tmp", fallbackName: "m", registry: registry)
    #expect {
      try AssembledPipeline.assemble(manifest, registry: registry)
    } throws: { error in
      "\(error)".contains(message)
    }
  }
}
