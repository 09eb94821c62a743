import BuiltInComponents
import DistillCore
import DistillNN
import DistillTestSupport
import Foundation
import Testing

@testable import AdversarialDistillation
@testable import DistillPipeline

/// ADD's discriminator heads on a network that is not a diffusion model: a classifier trained
/// by `pipeline train-classifier` (`featureClassifier`), its convolution stages as features.
@Suite struct ClassifierFeaturesTests {
  /// An image classifier of `[3, 8, 8]` images saved in a fresh folder.
  static func savedClassifier(inputShape: [Int] = [3, 8, 8]) throws -> (String, TrainedClassifier) {
    var rng = RandomGenerator(seed: 1)
    let network = ImageClassifier(ImageClassifierConfig(inputShape: inputShape, classes: 2, width: 4, features: 8), using: &rng)
    let classifier = TrainedClassifier(
      network: network, classNames: ["a", "b"], classPriors: [0.5, 0.5], heldOutAccuracy: nil, heldOutSamples: nil)
    let folder = try makeTemporaryFolder("feature-classifier")
    try classifier.save(folder: folder)
    return (folder, classifier)
  }

  static func manifest(classifier: String, output: String) -> JSONValue {
    let low = [String](repeating: "-0.5", count: 192).joined(separator: ",")
    let high = [String](repeating: "0.5", count: 192).joined(separator: ",")
    let mixture = #""means": [[\#(low)], [\#(high)]], "std": 0.2, "sampleShape": [3, 8, 8]"#
    let text = """
      {"name": "add-classifier", "seed": 2,
       "teacher": {"type": "gaussian-mixture", \(mixture)},
       "data": {"type": "shapes", "size": 8, "classes": 2},
       "schedule": {"type": "ddpm", "prediction": "v_prediction"},
       "generator": {"type": "denoiser", "init": "new", "timesteps": [999, 499], "trainingInput": "noised-data",
         "network": {"type": "unet2d", "config": {"sample_size": 8, "in_channels": 3, "out_channels": 3,
           "block_out_channels": [8, 16], "layers_per_block": 1, "down_block_types": ["DownBlock2D", "DownBlock2D"],
           "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 4}}},
       "losses": [{"type": "adversarial-distillation", "featureClassifier": \(JSONValue.quoted(classifier))}],
       "training": {"steps": 3, "batchSize": 4, "checkpointEvery": 100},
       "evaluation": {"every": 100, "samples": 4, "gridSize": 4},
       "output": \(JSONValue.quoted(output))}
      """
    return try! JSONValue.parse(Data(text.utf8), source: "add-classifier")
  }

  @Test func headsReadTheClassifiersStages() throws {
    let (folder, classifier) = try Self.savedClassifier()
    let features = classifier.network.features(Tensor.zeros([2, 3, 8, 8]), timesteps: [0, 0], labels: nil)
    // 8x8 images take one stage of 4 channels (to 4x4); the bottleneck is the 8 features.
    #expect(features.encoder.map(\.shape) == [[2, 4, 4, 4]] && features.bottleneck.shape == [2, 8])
    let out = try makeTemporaryFolder("add-classifier")
    let trainer = try train(Self.manifest(classifier: folder, output: out + "/run"))
    let term = try #require(trainer.pipeline.losses.first?.term as? AdversarialDistillationTerm)
    #expect(term.heads.count == 2 && term.heads[0].count == 1 && term.features is ImageClassifier)
    let records = try MetricsLog.read(path: out + "/run/metrics.jsonl")
    let losses = records.compactMap { $0.values["aux/add-discriminator"] }
    #expect(!losses.isEmpty && losses.allSatisfy(\.isFinite), "\(records.map(\.values))")
  }

  @Test func aClassifierOfOtherImagesIsRefusedByName() throws {
    let (folder, _) = try Self.savedClassifier(inputShape: [1, 8, 8])
    let out = try makeTemporaryFolder("add-classifier-bad")
    do {
      try train(Self.manifest(classifier: folder, output: out + "/run"))
      Issue.record("no error thrown")
    } catch {
      #expect("\(error)".contains("losses[0].featureClassifier"), "\(error)")
    }
  }
}
