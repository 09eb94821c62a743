import Foundation
import Testing

@testable import DistillNN

/// The diffusers fixtures live with the core's safetensors tests; reached by source path.
let sharedFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().appendingPathComponent("DistillCoreTests/Fixtures")

func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
  zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

@Suite struct UNet2DParityTests {
  /// `output` = diffusers `UNet2DModel(sample, timestep).sample`, from make_fixtures.py.
  @Test(arguments: ["unet2d-small", "unet2d-plain"])
  func forwardMatchesDiffusers(fixture: String) throws {
    let folder = sharedFixtures.appendingPathComponent(fixture).path
    let unet = try UNet2DModel.load(folder: folder)
    let io = try SafetensorsFile.read(contentsOf: folder + "/io.safetensors")
    let output = withoutGradients { unet(try! io.tensor("sample"), timesteps: try! io.tensor("timestep").scalars) }
    let expected = try io.tensor("output")
    #expect(output.shape == expected.shape)
    #expect(maxAbsDifference(output, expected) < 1e-4)
  }

  @Test func keysMatchTheCheckpointExactly() throws {
    let folder = sharedFixtures.appendingPathComponent("unet2d-small").path
    let unet = try UNet2DModel.load(folder: folder)
    let file = try SafetensorsFile.read(contentsOf: folder + "/" + UNet2DModel.weightsFileName)
    #expect(Set(unet.namedParameters().map(\.name)) == Set(file.keys))
    for (name, parameter) in unet.namedParameters() { #expect(file.info(name)?.shape == parameter.shape) }
  }
}
