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
/// or `[N]`) tensors of `inputPath` and writes its output as `output` to `outputPath` (float32,
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
  let output = withoutGradients { teacher(sample, timesteps: timesteps) }
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
