import DistillCore
import DistillTestSupport
import Foundation
import Testing

@testable import DistillNN

/// diffusers' `AutoencoderKL` on the sd-tiny VAE (`Tests/Fixtures/sd-tiny/vae` as diffusers saves
/// it, and the `vae_*` tensors of `io.safetensors`: the encoder's posterior for two images and the
/// decoder's images for two latents).
@Suite struct AutoencoderKLTests {
  static let folder = sdTinyFixture + "/vae"

  static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).map { Swift.abs($0 - $1) }.max() ?? .infinity
  }

  @Test func encodeAndDecodeMatchDiffusers() throws {
    let vae = try AutoencoderKL.load(folder: Self.folder)
    #expect(vae.config.scalingFactor == 0.18215 && vae.config.blockOutChannels == [32, 64])
    let io = try SafetensorsFile.read(contentsOf: sdTinyFixture + "/io.safetensors")
    let (mean, logVariance) = withoutGradients { vae.encode(try! io.tensor("vae_image")) }
    #expect(mean.shape == [2, 4, 8, 8])
    #expect(Self.maxDifference(mean, try io.tensor("vae_latent_mean")) < 1e-4)
    #expect(Self.maxDifference(logVariance, try io.tensor("vae_latent_logvar")) < 1e-4)
    let decoded = withoutGradients { vae.decode(try! io.tensor("vae_decode_input")) }
    #expect(decoded.shape == [2, 3, 16, 16])
    #expect(Self.maxDifference(decoded, try io.tensor("vae_decoded")) < 1e-4)
    // The diffusion model's latents are the mean scaled; decoding them undoes the scale.
    let latents = withoutGradients { vae.latents(from: try! io.tensor("vae_image")) }
    #expect(Self.maxDifference(latents, mean * 0.18215) < 1e-6)
    let back = withoutGradients { vae.decodeLatents(latents) }
    #expect(Self.maxDifference(back, withoutGradients { vae.decode(mean) }) < 1e-5)
  }

  @Test func configKeysItDoesNotComputeAreRefusedByName() throws {
    let folder = try makeTemporaryFolder("vae")
    let config = folder + "/config.json"
    let text = try String(contentsOfFile: Self.folder + "/config.json", encoding: .utf8)
    for (from, to, key) in [
      ("\"UpDecoderBlock2D\"", "\"AttnUpDecoderBlock2D\"", "up_block_types"),
      ("\"latents_mean\": null", "\"latents_mean\": [0, 0, 0, 0]", "latents_mean"),
      ("\"act_fn\": \"silu\"", "\"act_fn\": \"mish\"", "act_fn"),
      ("\"force_upcast\": true", "\"force_upcast\": true, \"block_type\": 1", "block_type"),
    ] {
      try text.replacingOccurrences(of: from, with: to).write(toFile: config, atomically: true, encoding: .utf8)
      #expect(text.contains(from), "\(from)")
      expectDistillError(containing: [config, key]) { _ = try AutoencoderKLConfig.decode(Data(contentsOf: URL(fileURLWithPath: config)), source: config) }
    }
  }
}
