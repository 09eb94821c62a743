import DistillTestSupport
import Foundation
import Testing

@testable import DistillNN

/// LPIPS fixtures (`lpips-<net>-randbackbone`, made by Fixtures/make_lpips_fixtures.py with the
/// package; the trunk weights follow a formula, see `lpipsTestWeights`); reached by source path.
let lpipsFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// The full state dict of each fixture, rebuilt once per test process.
let lpipsFullWeights: [LPIPS.Network: String] = Dictionary(
  uniqueKeysWithValues: LPIPS.Network.allCases.map { network in
    (network, try! lpipsTestWeights(fixture: lpipsFixtures.path + "/lpips-\(network.rawValue)-randbackbone/weights.safetensors"))
  })

func lpipsWeightsPath(_ network: LPIPS.Network) -> String { lpipsFullWeights[network]! }

func lpipsIO(_ network: LPIPS.Network) throws -> SafetensorsFile {
  try SafetensorsFile.read(contentsOf: lpipsFixtures.path + "/lpips-\(network.rawValue)-randbackbone/io.safetensors")
}

/// A copy of `tensors` written to a fresh temporary safetensors file; the caller removes it.
func temporaryWeights(_ tensors: [String: Tensor]) throws -> String {
  let path = FileManager.default.temporaryDirectory.appendingPathComponent("lpips-\(UUID().uuidString).safetensors").path
  try SafetensorsFile.write(tensors, to: path)
  return path
}

/// The message of the `DistillError` that `body` throws, or a recorded failure.
func distillErrorMessage(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> String {
  do {
    try body()
    Issue.record("no error was thrown", sourceLocation: sourceLocation)
  } catch let error as DistillError {
    return error.description
  } catch {
    Issue.record("not a DistillError: \(error)", sourceLocation: sourceLocation)
  }
  return ""
}

@Suite struct LPIPSParityTests {
  /// `distance` = `lpips.LPIPS(net=...)(a, b)` from the package, to 1e-5 relative.
  @Test(arguments: LPIPS.Network.allCases)
  func distanceMatchesThePackage(network: LPIPS.Network) throws {
    let lpips = try LPIPS.load(network: network, weightsPath: lpipsWeightsPath(network))
    let io = try lpipsIO(network)
    let expected = try io.tensor("distance")
    let d = withoutGradients { lpips(try! io.tensor("a"), try! io.tensor("b")) }
    #expect(d.shape == expected.shape)
    expectClose(d, expected, rtol: 1e-5, atol: 0, "LPIPS \(network.rawValue)")
    // The fixtures compare distinct images: a distance of zero would make the check empty.
    #expect(expected.scalars.allSatisfy { $0 > 1e-3 })
  }

  @Test(arguments: LPIPS.Network.allCases)
  func keysAreThePackagesStateDictKeys(network: LPIPS.Network) throws {
    let file = try SafetensorsFile.read(contentsOf: lpipsWeightsPath(network))
    let module = LPIPS(network: network).namedParameters()
    #expect(module.map(\.name).sorted() == file.keys)
    for (name, parameter) in module { #expect(file.info(name)?.shape == parameter.shape, "\(name)") }
    #expect(network.parameterShapes.map(\.key).sorted() == file.keys)
  }

  @Test func goldenKeyListOfAlex() {
    #expect(LPIPS.Network.alex.parameterShapes.map(\.key) == [
      "scaling_layer.shift", "scaling_layer.scale",
      "net.slice1.0.weight", "net.slice1.0.bias", "net.slice2.3.weight", "net.slice2.3.bias",
      "net.slice3.6.weight", "net.slice3.6.bias", "net.slice4.8.weight", "net.slice4.8.bias",
      "net.slice5.10.weight", "net.slice5.10.bias",
      "lin0.model.1.weight", "lin1.model.1.weight", "lin2.model.1.weight", "lin3.model.1.weight",
      "lin4.model.1.weight",
    ])
    #expect(LPIPS.Network.alex.tapChannels == [64, 192, 384, 256, 256])
    #expect(LPIPS.Network.vgg.tapChannels == [64, 128, 256, 512, 512])
    #expect(LPIPS.Network.squeeze.tapChannels == [64, 128, 256, 384, 384, 512, 512])
  }

  @Test func identicalImagesAreAtZeroAndTheDistanceIsSymmetric() throws {
    let lpips = try LPIPS.load(network: .squeeze, weightsPath: lpipsWeightsPath(.squeeze))
    let io = try lpipsIO(.squeeze)
    let (a, b) = (try io.tensor("a"), try io.tensor("b"))
    withoutGradients {
      #expect(lpips(a, a).scalars.allSatisfy { $0 == 0 })
      expectClose(lpips(b, a), lpips(a, b), rtol: 1e-6, atol: 0)
    }
  }

  /// Smallest sides, as found by running the package on growing zero images: alex needs its
  /// two 3x3 pools to fit after the stride-4 11x11 conv; squeeze's ceil-mode pools accept a
  /// 2x2 input.
  @Test func minimumSides() {
    #expect(LPIPS.Network.alex.minimumSide == 31)
    #expect(LPIPS.Network.vgg.minimumSide == 16)
    #expect(LPIPS.Network.squeeze.minimumSide == 17)
  }
}

@Suite struct LPIPSGradientTests {
  /// The fused per-layer head against central differences, every element of both maps.
  @Test func layerDistanceGradients() {
    let f0 = testTensor([2, 5, 3, 2], seed: 11)
    let f1 = testTensor([2, 5, 3, 2], seed: 12)
    let weight = testTensor([5], seed: 13, range: 0.1...1)
    checkGradients([f0, f1], epsilon: 1e-3, rtol: 2e-2, atol: 1e-3) { p in LPIPS.layerDistance(p[0], p[1], weight: weight) }
  }

  /// Where every channel of a pixel is zero (ReLU does that) the gradient is finite, not NaN.
  @Test func zeroFeaturePixelsHaveFiniteGradients() {
    var f0 = testTensor([1, 4, 2, 2], seed: 21)
    f0.withUnsafeMutableBufferPointer { for c in 0..<4 { $0[c * 4] = 0 } }
    let f1 = testTensor([1, 4, 2, 2], seed: 22)
    let (_, grads) = valueWithGradients(at: [f0, f1]) { p in
      LPIPS.layerDistance(p[0], p[1], weight: Tensor([1, 2, 3, 4])).sum()
    }
    #expect(grads.allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
    #expect(grads[0].scalars.contains { $0 != 0 })
  }

  /// Gradients w.r.t. both images equal torch autograd's through the package
  /// (Fixtures/lpips-gradients.safetensors, 2 pairs of 3x32x32).
  @Test(arguments: LPIPS.Network.allCases)
  func distanceGradientsMatchTorch(network: LPIPS.Network) throws {
    let lpips = try LPIPS.load(network: network, weightsPath: lpipsWeightsPath(network))
    let file = try SafetensorsFile.read(contentsOf: lpipsFixtures.path + "/lpips-gradients.safetensors")
    let name = network.rawValue
    let (_, grads) = valueWithGradients(at: [try file.tensor("\(name).a"), try file.tensor("\(name).b")]) { p in
      (lpips(p[0], p[1]) * Tensor([0.7, 1.3])).sum()
    }
    for (k, key) in ["grad_a", "grad_b"].enumerated() {
      let expected = try file.tensor("\(name).\(key)")
      let largest = expected.scalars.map(abs).max()!
      #expect(largest > 0)
      // Two float32 backward passes through up to 13 convolutions in different orders: the
      // worst element of vgg's differs by 4e-6 (0.02% of the largest); the forward agrees to 1e-5.
      expectClose(grads[k], expected, rtol: 1e-3, atol: 5e-4 * largest, "\(name) \(key)")
    }
  }

  /// The whole distance w.r.t. both images against central differences at sampled pixels.
  @Test(arguments: LPIPS.Network.allCases)
  func distanceGradientsMatchFiniteDifferences(network: LPIPS.Network) throws {
    let lpips = try LPIPS.load(network: network, weightsPath: lpipsWeightsPath(network))
    let side = network.minimumSide + 1
    let a = testTensor([2, 3, side, side], seed: 31)
    let b = testTensor([2, 3, side, side], seed: 32)
    let pairWeights = Tensor([0.7, 1.3])
    func objective(_ x: Tensor, _ y: Tensor) -> Double {
      let d = withoutGradients { lpips(x, y) }
      return zip(d.scalars, pairWeights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }
    let (_, grads) = valueWithGradients(at: [a, b]) { p in (lpips(p[0], p[1]) * pairWeights).sum() }
    let step: Float = 2e-3
    for (k, input) in [a, b].enumerated() {
      let largest = grads[k].scalars.map(abs).max()!
      #expect(largest > 0)
      var checked = 0
      for i in Swift.stride(from: 7, to: input.count, by: input.count / 24) {
        var plus = [a, b]
        var minus = [a, b]
        plus[k].withUnsafeMutableBufferPointer { $0[i] += step }
        minus[k].withUnsafeMutableBufferPointer { $0[i] -= step }
        let numeric = Float((objective(plus[0], plus[1]) - objective(minus[0], minus[1])) / (2 * Double(step)))
        let analytic = grads[k].scalars[i]
        #expect(abs(analytic - numeric) <= 0.05 * abs(numeric) + 0.02 * largest, "\(network) input \(k) element \(i): \(analytic) vs \(numeric)")
        checked += 1
      }
      #expect(checked >= 24)
    }
  }
}

@Suite struct LPIPSLoadingTests {
  @Test func misnamedKeyIsRefusedNamingFileAndKey() throws {
    var tensors = try SafetensorsFile.read(contentsOf: lpipsWeightsPath(.alex)).tensors()
    tensors["net.slice2.3.weights"] = tensors.removeValue(forKey: "net.slice2.3.weight")
    let path = try temporaryWeights(tensors)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let message = distillErrorMessage { _ = try LPIPS.load(network: .alex, weightsPath: path) }
    #expect(message.contains(path))
    #expect(message.contains("'net.slice2.3.weight': missing"))
    #expect(message.contains("'net.slice2.3.weights': unexpected key"))
  }

  @Test func misshapedKeyIsRefusedNamingTheShapes() throws {
    var tensors = try SafetensorsFile.read(contentsOf: lpipsWeightsPath(.squeeze)).tensors()
    tensors["lin2.model.1.weight"] = Tensor.ones([1, 128, 1, 1])
    let path = try temporaryWeights(tensors)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let message = distillErrorMessage { _ = try LPIPS.load(network: .squeeze, weightsPath: path) }
    #expect(message.contains(path))
    #expect(message.contains("'lin2.model.1.weight': shape [1, 128, 1, 1] in the weights, LPIPS squeeze expects [1, 256, 1, 1]"))
  }

  @Test func weightsOfAnotherNetworkAreNamed() {
    let message = distillErrorMessage { _ = try LPIPS.load(network: .vgg, weightsPath: lpipsWeightsPath(.alex)) }
    #expect(message.contains("these are the weights of LPIPS alex"))
  }

  @Test func duplicateLinsKeysGetAHint() throws {
    var tensors = try SafetensorsFile.read(contentsOf: lpipsWeightsPath(.alex)).tensors()
    tensors["lins.0.model.1.weight"] = tensors["lin0.model.1.weight"]
    let path = try temporaryWeights(tensors)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let message = distillErrorMessage { _ = try LPIPS.load(network: .alex, weightsPath: path) }
    #expect(message.contains("'lins.0.model.1.weight': unexpected key"))
    #expect(message.contains("drop lins.*"))
  }

  @Test func missingFileIsNamed() {
    let message = distillErrorMessage { _ = try LPIPS.load(network: .alex, weightsPath: "/nonexistent/lpips.safetensors") }
    #expect(message.contains("/nonexistent/lpips.safetensors"))
  }
}
