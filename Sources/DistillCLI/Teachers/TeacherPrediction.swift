import DistillDiffusion
import Foundation

// The logic of `pipeline predict`.

/// What ``predict(teacherPath:inputPath:outputPath:)`` did.
struct PredictReport: Sendable {
  var teacherSummary: String
  var inputShape: [Int]
  var timesteps: [Float]
  var outputShape: [Int]
  /// max |output − reference| when the input file also holds an `output` tensor.
  var maxAbsDifferenceFromReference: Float?
}

/// Runs the teacher's raw network on the `sample` (`[N, ...]`) and `timestep` (a scalar, `[1]`
/// or `[N]`) tensors of `inputPath`, with `class_labels` (`[N]` class indices, or for an
/// `"identity"` class embedding `[N, time_embed_dim]` vectors) for a class-conditional network,
/// and writes its output as `output` to `outputPath` (float32,
/// written to a temporary file and renamed). The layout is that of the diffusers fixtures, so
/// `io.safetensors` written by diffusers checks a converted checkpoint: when the input holds
/// an `output` tensor too, the largest difference from it is reported.
///
/// - Throws: ``DistillError`` naming the file and key.
func predict(teacherPath: String, inputPath: String, outputPath: String) throws -> PredictReport {
  let teacher = try loadTeacher(path: teacherPath)
  let input = try SafetensorsFile.read(contentsOf: inputPath)
  for key in ["sample", "timestep"] where input.info(key) == nil {
    throw DistillError.invalidValue(
      location: "\(inputPath): \(key)", expected: "a tensor named \"\(key)\"",
      found: "none (keys: \(input.keys.joined(separator: ", ")))")
  }
  let sample = try input.tensor("sample")
  try teacher.validateInput(shape: sample.shape, location: "\(inputPath): sample")
  let n = sample.shape[0]
  let raw = try input.tensor("timestep").scalars
  let timesteps: [Float]
  switch raw.count {
  case 1: timesteps = Array(repeating: raw[0], count: n)
  case n: timesteps = raw
  default:
    throw DistillError.invalidValue(
      location: "\(inputPath): timestep", expected: "one timestep, or one per sample (\(n))",
      found: "\(raw.count) values")
  }
  guard timesteps.allSatisfy(\.isFinite) else {
    throw DistillError.invalidValue(
      location: "\(inputPath): timestep", expected: "finite values", found: "\(timesteps)")
  }
  let output = try withoutGradients { try predictOutput(teacher, sample, timesteps, input: input, inputPath: inputPath) }
  var difference: Float?
  if input.info("output") != nil {
    let reference = try input.tensor("output")
    if reference.shape == output.shape {
      difference = zip(output.scalars, reference.scalars).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
    }
  }
  try SafetensorsFile.write(["output": output], metadata: ["teacher": teacherPath], to: outputPath)
  return PredictReport(
    teacherSummary: teacher.summary, inputShape: sample.shape, timesteps: timesteps, outputShape: output.shape,
    maxAbsDifferenceFromReference: difference)
}

/// The raw output for the input file's `class_labels` (when it has them), checked against the
/// teacher's classes: labels for a network without classes, or none for one that needs them,
/// are refused naming the key.
private func predictOutput(
  _ teacher: any Denoiser, _ sample: Tensor, _ timesteps: [Float], input: SafetensorsFile, inputPath: String
) throws -> Tensor {
  let n = sample.shape[0]
  let location = "\(inputPath): class_labels"
  guard input.info("class_labels") != nil else {
    if let classes = teacher.classes, classes.null == nil {
      throw DistillError.invalidValue(
        location: location, expected: "class labels [\(n)] for the class-conditional teacher (\(classes.count) classes, no null class)",
        found: "none")
    }
    if let unet = teacher as? UNetDenoiser, unet.unet.config.classEmbedding == .identity {
      throw DistillError.invalidValue(location: location, expected: "[\(n), time_embed_dim] label vectors", found: "none")
    }
    return teacher(sample, timesteps: timesteps)
  }
  let labels = try input.tensor("class_labels")
  if let unet = teacher as? UNetDenoiser, unet.unet.config.classEmbedding == .identity {
    let width = unet.unet.config.timeEmbedDimension
    guard labels.shape == [n, width] else {
      throw DistillError.invalidValue(location: location, expected: "label vectors [\(n), \(width)]", found: "\(labels.shape)")
    }
    return unet.unet(sample, timesteps: timesteps, classLabels: labels)
  }
  guard let classes = teacher.classes else {
    throw DistillError.invalidValue(
      location: location, expected: "no class labels: the teacher takes none (\(teacher.summary))", found: "\(labels.shape)")
  }
  let values = labels.scalars
  let allowed = classes.null.map { "0..<\(classes.count) or the null class \($0)" } ?? "0..<\(classes.count)"
  guard labels.shape == [n] else {
    throw DistillError.invalidValue(location: location, expected: "one class label per sample [\(n)]", found: "\(labels.shape)")
  }
  func valid(_ v: Float) -> Bool {
    guard v >= 0, v < 16_777_216, v == v.rounded() else { return false }
    return (0..<classes.count).contains(Int(v)) || Int(v) == classes.null
  }
  if let bad = values.first(where: { !valid($0) }) {
    throw DistillError.invalidValue(location: location, expected: "class labels in \(allowed)", found: "\(bad)")
  }
  return teacher(sample, timesteps: timesteps, condition: Condition(labels: values.map { Int($0) }))
}
