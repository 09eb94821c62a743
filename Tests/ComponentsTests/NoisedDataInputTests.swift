import DistillCore
import DistillDiffusion
import DistillTestSupport
import Foundation
import Testing

@testable import BuiltInComponents
@testable import DenoiserGenerator
@testable import DistillPipeline

/// ADD's student input (`trainingInput: "noised-data"`): the data batch noised to a random
/// student step, pure noise at T−1.
@Suite struct NoisedDataInputTests {
  static let mlp = #"{"type": "mlp", "inputSize": 2, "width": 16, "depth": 2, "outputSize": 2}"#
  static let mixture = #"{"type": "gaussian-mixture", "means": [[2, 0], [-2, 0]], "std": 0.3}"#

  static func manifest(generator extra: String, data: Bool = true) -> String {
    """
    {"teacher": \(mixture),
     \(data ? "\"data\": \(mixture)," : "")
     "generator": {"type": "denoiser", "init": "new", "prediction": "sample", "network": \(mlp),
                   "timesteps": [999, 749, 499, 249], "stepping": "ddim"\(extra)},
     "losses": [{"type": "knowledge-distillation", "steps": 2}],
     "training": {"steps": 2, "batchSize": 6}}
    """
  }

  @Test func theInputIsTheDataNoisedToTheDrawnStep() throws {
    let pipeline = try assemble(Self.manifest(generator: #", "trainingInput": "noised-data""#))
    let generator = try #require(pipeline.generator as? DenoiserSampleGenerator)
    #expect(generator.trainingInput == .noisedData && !generator.backwardSimulation)
    let schedule = generator.denoiser.schedule
    let n = 6
    let x0 = testTensor([n, 2], seed: 3)
    let noise = testTensor([n, 2], seed: 4)
    let indices = [0, 1, 2, 3, 0, 2]
    let input = generator.noisedData(x0, noise: noise, indices: indices)
    for (row, k) in indices.enumerated() {
      // Step 0 is t = 999: pure noise (zero terminal SNR), not √ᾱ_999·x₀ + √(1 − ᾱ_999)·ε.
      let t = generator.timesteps[k]
      let (a, s) = k == 0 ? (0.0, 1.0) : (schedule.signalScale(t), schedule.noiseScale(t))
      for j in 0..<2 {
        let expected = a * Double(x0.scalars[row * 2 + j]) + s * Double(noise.scalars[row * 2 + j])
        #expect(abs(Double(input.scalars[row * 2 + j]) - expected) < 1e-6)
      }
    }
    // trainingSample: the student's x̂₀ at the data batch noised to each row's drawn step,
    // the steps drawn from the rows' streams; gradients reach the generator.
    // (The rows' streams give the data batch first, then the steps.)
    let streams = makeContext(pipeline, batch: n, seed: 5)
    let data = try #require(try streams.batch().samples)
    let drawn = streams.integers(in: 0..<4)
    let context = makeContext(pipeline, batch: n, seed: 5)
    let full = testTensor([n] + generator.noiseShape, seed: 6)
    let sample = generator.trainingSample(full, condition: .none, context: context)
    let expected = withoutGradients {
      generator.denoiser.x0(
        generator.noisedData(data, noise: generator.noisePart(full, 0), indices: drawn),
        timesteps: drawn.map { Float(generator.timesteps[$0]) })
    }
    expectClose(sample.detached(), expected, rtol: 1e-6, atol: 1e-7)
    generator.module.zeroGrad()
    sample.square().sum().backward()
    #expect(
      generator.module.namedParameters().contains {
        ($0.parameter.grad?.scalars ?? []).contains { $0 != 0 }
      })
  }

  @Test func badCombinationsNameTheirKey() throws {
    func message(_ text: String) -> String {
      do {
        _ = try assemble(text)
        return "accepted"
      } catch {
        return "\(error)"
      }
    }
    let noData = message(
      Self.manifest(generator: #", "trainingInput": "noised-data""#, data: false))
    #expect(noData.contains("generator.trainingInput") && noData.contains("no data"), "\(noData)")
    let both = message(
      Self.manifest(generator: #", "trainingInput": "noised-data", "backwardSimulation": true"#))
    #expect(both.contains("generator.backwardSimulation"), "\(both)")
    let late = message(
      Self.manifest(generator: #", "trainingInput": "noised-data""#).replacingOccurrences(
        of: "[999, 749, 499, 249]", with: "[900, 500]"))
    #expect(late.contains("generator.timesteps") && late.contains("999"), "\(late)")
    // backwardSimulation alone still means backward simulation.
    let legacy = try assemble(Self.manifest(generator: #", "backwardSimulation": true"#))
    #expect((legacy.generator as? DenoiserSampleGenerator)?.trainingInput == .backwardSimulation)
  }
}
