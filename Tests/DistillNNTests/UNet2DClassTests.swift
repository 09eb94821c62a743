import DistillTestSupport
import Foundation
import Testing

@testable import DistillNN

/// Class-conditional UNets: the shared `unet2d-classcond` fixture (a `num_class_embeds` table)
/// and Fixtures/class-conditional/make_class_fixtures.py (`class_embed_type` "timestep" and
/// "identity"), all made by diffusers 0.42.1.
@Suite struct UNet2DClassTests {
  static let folders = [
    sharedFixtures.appendingPathComponent("unet2d-classcond").path,
    unetFixtures.appendingPathComponent("class-conditional/timestep").path,
    unetFixtures.appendingPathComponent("class-conditional/identity").path,
  ]

  @Test(arguments: folders)
  func forwardWithClassLabelsMatchesDiffusers(folder: String) throws {
    let unet = try UNet2DModel.load(folder: folder)
    #expect(unet.config.classEmbedding != nil)
    let io = try SafetensorsFile.read(contentsOf: folder + "/io.safetensors")
    let output = withoutGradients {
      unet(try! io.tensor("sample"), timesteps: try! io.tensor("timestep").scalars, classLabels: try! io.tensor("class_labels"))
    }
    let expected = try io.tensor("output")
    #expect(output.shape == expected.shape)
    let error = maxAbsDifference(output, expected)
    #expect(error < 1e-4, "\(folder): \(error)")
    // The labels matter: other labels give another output.
    let labels = try io.tensor("class_labels")
    let shifted = Tensor(shape: labels.shape, scalars: labels.scalars.map { unet.config.classEmbedding == .identity ? $0 + 1 : Float((Int($0) + 1) % 5) })
    let other = withoutGradients {
      unet(try! io.tensor("sample"), timesteps: try! io.tensor("timestep").scalars, classLabels: shifted)
    }
    #expect(maxAbsDifference(other, expected) > 1e-3)
  }

  @Test(arguments: folders)
  func everyKeyIsReadAndTheConfigWritesBackTheSame(folder: String) throws {
    let unet = try UNet2DModel.load(folder: folder)
    let file = try SafetensorsFile.read(contentsOf: folder + "/" + UNet2DModel.weightsFileName)
    #expect(Set(unet.namedParameters().map(\.name)) == Set(file.keys))
    #expect(try unet.config.parameterCount() == unet.parameterCount)
    let copy = temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: copy) }
    try unet.save(folder: copy)
    let reloaded = try UNet2DModel.load(folder: copy)
    #expect(reloaded.config == unet.config)
  }

  @Test func theConfigTellsTheThreeKinds() throws {
    let kinds = try Self.folders.map { try UNet2DModel.load(folder: $0).config.classEmbedding }
    #expect(kinds == [.table(classes: 5), .timestep, .identity])
  }

  @Test func unsupportedClassEmbeddingsAreRefusedByName() throws {
    let base = try String(contentsOfFile: Self.folders[0] + "/config.json", encoding: .utf8)
    for (from, to, key) in [
      (#""class_embed_type": null"#, #""class_embed_type": "projection""#, "class_embed_type"),
      (#""num_class_embeds": 5"#, #""num_class_embeds": 0"#, "num_class_embeds"),
      (#""num_class_embeds": 5"#, #""num_class_embeds": "five""#, "num_class_embeds"),
    ] {
      let text = base.replacingOccurrences(of: from, with: to)
      #expect(text != base)
      let error = try #require(throws: DistillError.self) { try UNet2DConfig.decode(Data(text.utf8), source: "c.json") }
      #expect("\(error)".contains(key), "\(error)")
    }
  }
}
