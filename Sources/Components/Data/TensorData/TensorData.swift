import DistillCore
import DistillPipeline

/// A dataset held in one safetensors file: a tensor `[N, ...]` of samples (images `[N, C, H,
/// W]` in [-1, 1] by convention) and optionally a tensor of `N` integer class labels. Each
/// row of a batch is a sample drawn uniformly from its row's stream (with replacement).
public final class TensorSource: FiniteDataSource {
  public let samples: Tensor
  public let labels: [Int]?
  /// The class names, when given; else ``labelNames`` counts up to the largest label.
  let names: [String]?
  public var sampleShape: [Int] { Array(samples.shape.dropFirst()) }

  /// A source of `samples` `[N, ...]` and, optionally, their `labels` (N class indices) and the
  /// classes' names.
  public init(samples: Tensor, labels: [Int]?, labelNames: [String]? = nil) {
    precondition(samples.rank >= 2 && labels.map { $0.count == samples.shape[0] && $0.allSatisfy { $0 >= 0 } } ?? true)
    self.samples = samples
    self.labels = labels
    self.names = labelNames
  }

  /// - Throws: ``DistillError`` naming the file and key: a missing key (listing those there),
  ///   fewer than 2 dimensions, no rows, a non-finite value, labels of another length or not
  ///   whole non-negative numbers.
  public init(path: String, key: String?, labelsKey: String?, location: String) throws {
    let file = try SafetensorsFile.read(contentsOf: path)
    func tensor(_ key: String, _ parameter: String) throws -> Tensor {
      guard file.info(key) != nil else {
        throw DistillError.invalidValue(
          location: "\(location).\(parameter)", expected: "a tensor of \(path) (it holds \(file.keys.joined(separator: ", ")))",
          found: "\"\(key)\"")
      }
      try file.requireFinite([key])
      return try file.tensor(key)
    }
    guard let sampleKey = key ?? file.keys.first else {
      throw DistillError.malformed(path: path, detail: "holds no tensors")
    }
    let samples = try tensor(sampleKey, "key")
    guard samples.shape.count >= 2, samples.shape[0] > 0 else {
      throw DistillError.malformed(
        path: path, detail: "\"\(sampleKey)\" has shape \(samples.shape); expected [N, ...] with N > 0 samples")
    }
    self.samples = samples
    names = nil
    if let labelsKey {
      let values = try tensor(labelsKey, "labels").scalars
      guard values.count == samples.shape[0] else {
        throw DistillError.malformed(
          path: path, detail: "\"\(labelsKey)\" holds \(values.count) labels for \(samples.shape[0]) samples")
      }
      guard let bad = values.firstIndex(where: { $0 < 0 || $0 != $0.rounded() }) else {
        labels = values.map { Int($0) }
        return
      }
      throw DistillError.malformed(
        path: path, detail: "\"\(labelsKey)\"[\(bad)] is \(values[bad]); expected a class index (a whole number >= 0)")
    } else {
      labels = nil
    }
  }

  /// The names given, else `"0"`, `"1"`, ... up to the largest label.
  public var labelNames: [String]? { names ?? labels.map { labels in (0...(labels.max() ?? 0)).map(String.init) } }
  public var count: Int { samples.shape[0] }

  public func rows(_ indices: [Int]) -> Batch {
    Batch(samples: samples.gatheringRows(indices), labels: labels.map { labels in indices.map { labels[$0] } })
  }

  public func next(_ count: Int, using rng: inout RandomGenerator) throws -> Batch {
    let indices = rng.integers(count: count, in: 0..<samples.shape[0])
    let per = sampleShape.reduce(1, *)
    let batch = samples.withUnsafeBufferPointer { source in
      Tensor(shape: [count] + sampleShape) { out in
        for (row, index) in indices.enumerated() {
          (out.baseAddress! + row * per).update(from: source.baseAddress! + index * per, count: per)
        }
      }
    }
    return Batch(samples: batch, labels: labels.map { labels in indices.map { labels[$0] } })
  }
}

public enum TensorData: DataComponent {
  public static let id = "tensors"
  public static let summary = "samples [N, ...] (and optional class labels) from one safetensors file, drawn uniformly"
  public static let parameters: [ParameterSpec] = [
    ParameterSpec("path", .path(mustExist: true), "the safetensors file, relative to the manifest"),
    .optional("key", .string, "the samples tensor (default: the first key in sorted order)"),
    .optional("labels", .string, "a tensor of N class indices"),
  ]

  public static func make(_ entry: ComponentEntry, _ context: BuildContext) throws -> any DataSource {
    try TensorSource(
      path: entry.path("path"), key: entry.optionalString("key"), labelsKey: entry.optionalString("labels"),
      location: entry.path)
  }
}
