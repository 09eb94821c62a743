import DistillDiffusion
import DistillNN
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
/// A `UNet2DConditionModel` folder (`unet/` of a Stable-Diffusion-layout folder, or the folder
/// itself) takes `encoder_hidden_states` `[N, L, cross_attention_dim]` from the input as well.
///
/// - Throws: ``DistillError`` naming the file and key.
func predict(teacherPath: String, inputPath: String, outputPath: String) throws -> PredictReport {
  if let unet = try conditionalUNetFolder(teacherPath) {
    return try predictConditional(unet, teacherPath: teacherPath, inputPath: inputPath, outputPath: outputPath)
  }
  let teacher = try loadTeacher(path: teacherPath)
  let input = try SafetensorsFile.read(contentsOf: inputPath)
  for key in ["sample", "timestep"] where input.info(key) == nil {
    throw DistillError.invalidValue(
      location: "\(inputPath): \(key)", expected: "a tensor named \"\(key)\"",
      found: "none (keys: \(input.keys.joined(separator: ", ")))")
  }
  let sample = try input.tensor("sample")
  try teacher.validateInput(shape: sample.shape, location: "\(inputPath): sample")
  let timesteps = try predictionTimesteps(input, inputPath: inputPath, count: sample.shape[0])
  let output = try withoutGradients { try predictOutput(teacher, sample, timesteps, input: input, inputPath: inputPath) }
  return try writePrediction(
    output, input: input, teacherPath: teacherPath, summary: teacher.summary, sampleShape: sample.shape,
    timesteps: timesteps, outputPath: outputPath)
}

/// The input file's `timestep`: one for every sample, or one per sample.
private func predictionTimesteps(_ input: SafetensorsFile, inputPath: String, count n: Int) throws -> [Float] {
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
  return timesteps
}

/// Writes `output`, comparing it with the input's `output` tensor when there is one.
private func writePrediction(
  _ output: Tensor, input: SafetensorsFile, teacherPath: String, summary: String, sampleShape: [Int], timesteps: [Float],
  outputPath: String
) throws -> PredictReport {
  var difference: Float?
  if input.info("output") != nil {
    let reference = try input.tensor("output")
    if reference.shape == output.shape {
      difference = zip(output.scalars, reference.scalars).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
    }
  }
  try SafetensorsFile.write(["output": output], metadata: ["teacher": teacherPath], to: outputPath)
  return PredictReport(
    teacherSummary: summary, inputShape: sampleShape, timesteps: timesteps, outputShape: output.shape,
    maxAbsDifferenceFromReference: difference)
}

/// The `UNet2DConditionModel` folder at `path` (or its `unet/`), when that is what it holds.
private func conditionalUNetFolder(_ path: String) throws -> String? {
  for folder in [path, (path as NSString).appendingPathComponent("unet")] {
    let config = (folder as NSString).appendingPathComponent("config.json")
    guard let data = FileManager.default.contents(atPath: config),
      case .object(let object) = try JSONValue.parse(data, source: config),
      object["_class_name"] == .string("UNet2DConditionModel")
    else { continue }
    return folder
  }
  return nil
}

/// `predict` of a conditional UNet: `sample`, `timestep` and `encoder_hidden_states`.
private func predictConditional(_ folder: String, teacherPath: String, inputPath: String, outputPath: String) throws
  -> PredictReport
{
  let unet = try UNet2DConditionModel.load(folder: folder)
  let input = try SafetensorsFile.read(contentsOf: inputPath)
  for key in ["sample", "timestep", "encoder_hidden_states"] where input.info(key) == nil {
    throw DistillError.invalidValue(
      location: "\(inputPath): \(key)", expected: "a tensor named \"\(key)\" for a UNet2DConditionModel",
      found: "none (keys: \(input.keys.joined(separator: ", ")))")
  }
  let sample = try input.tensor("sample")
  let c = unet.config
  let factor = 1 << (c.blockOutChannels.count - 1)
  guard sample.rank == 4, sample.shape[1] == c.inChannels, sample.shape[0] > 0, sample.shape[2] % factor == 0,
    sample.shape[3] % factor == 0
  else {
    throw DistillError.invalidValue(
      location: "\(inputPath): sample", expected: "[N, \(c.inChannels), H, W] with H and W multiples of \(factor)",
      found: "\(sample.shape)")
  }
  let states = try input.tensor("encoder_hidden_states")
  guard states.rank == 3, states.shape[0] == sample.shape[0], states.shape[2] == c.crossAttentionDimension else {
    throw DistillError.invalidValue(
      location: "\(inputPath): encoder_hidden_states", expected: "[\(sample.shape[0]), L, \(c.crossAttentionDimension)]",
      found: "\(states.shape)")
  }
  let timesteps = try predictionTimesteps(input, inputPath: inputPath, count: sample.shape[0])
  let output = withoutGradients { unet(sample, timesteps: timesteps, encoderHiddenStates: states) }
  return try writePrediction(
    output, input: input, teacherPath: teacherPath,
    summary: "UNet2DConditionModel: \(c.inChannels)→\(c.outChannels) channels, blocks \(c.blockOutChannels), cross-attention width \(c.crossAttentionDimension)",
    sampleShape: sample.shape, timesteps: timesteps, outputPath: outputPath)
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
