import DistillCore
import DistillDiffusion
import DistillNN
import Foundation

/// A trained student as a diffusers folder a user can take away: `config.json` and
/// `diffusion_pytorch_model.safetensors` (the student's `UNet2DModel`), and
/// `scheduler_config.json`, a `DDIMScheduler` that samples it in the student's steps
/// (`timestep_spacing` "trailing", `set_alpha_to_one`, `clip_sample` as the generator's
/// `clipSample`, eta 0), with the steps also
/// under `distillery_timesteps`. A one-step student that starts below T − 1 (the default of
/// an ε student on images, docs/teachers.md) gets `timestep_spacing` "leading" with its step
/// as `steps_offset`, which diffusers' one-step grid then is. ``sample(folder:count:seed:)``
/// samples such a folder alone.
///
/// Only a `denoiser` generator whose network is a UNet2D and whose steps are DDIM moves on
/// diffusers' trailing grid, or one step anywhere, can be written so.
public enum StudentExport {
  /// The key of `scheduler_config.json` that lists the student's timesteps.
  public static let timestepsKey = "distillery_timesteps"

  /// What ``export(run:to:)`` wrote.
  public struct Summary: Sendable {
    public let timesteps: [Int]
    public let parameterCount: Int
    public let prediction: Prediction
  }

  /// Writes the student of the run folder `run` to `out` (a new or empty folder), atomically:
  /// the folder appears whole or not at all.
  ///
  /// - Throws: ``DistillError`` naming the file and key: a run without `generator.json` or
  ///   `denoiser/`, a generator other than a UNet denoiser (an MLP, a consistency model),
  ///   steps diffusers' DDIM cannot take, or an `out` that holds files.
  public static func export(run: String, to out: String) throws -> Summary {
    let configPath = (run as NSString).appendingPathComponent("generator.json")
    var reader = try JSONObjectReader(file: configPath, missing: "cannot read: not a finished run folder (no generator.json)")
    let type = try reader.string("type") ?? ""
    guard type == "denoiser", case .object(let generator)? = reader.value("generator") else {
      throw DistillError.invalidValue(
        location: "\(configPath): type", expected: "\"denoiser\" (a UNet student; diffusers has no other kind of model to load)",
        found: "\"\(type)\"")
    }
    var inner = try JSONObjectReader(.object(generator), location: "\(configPath): generator")
    let timesteps = try inner.intArray("timesteps") ?? []
    let stepping = try inner.string("stepping") ?? "ddim"
    let clipSample = try inner.bool("clipSample", default: false)
    let denoiserFolder = (run as NSString).appendingPathComponent("denoiser")
    guard !StableDiffusionFolder.isTextToImage(folder: denoiserFolder) else {
      throw DistillError.invalidValue(
        location: denoiserFolder,
        expected: "a UNet2DModel student (a text-to-image run's denoiser/ is already a Stable-Diffusion-layout folder: sample it with `pipeline sample-teacher --teacher \(denoiserFolder)`)",
        found: "a Stable-Diffusion-layout folder")
    }
    let denoiser = try DenoiserFolder.load(folder: denoiserFolder)
    guard let unet = denoiser as? UNetDenoiser else {
      throw DistillError.invalidValue(
        location: "\(configPath): generator.network.type", expected: "unet2d (diffusers loads a UNet2DModel)",
        found: "\(denoiser.summary)")
    }
    let trainSteps = unet.schedule.trainSteps
    let trailing = ddim(unet).timesteps(steps: max(1, timesteps.count))
    let grid: (spacing: TimestepSpacing, offset: Int)
    if timesteps == trailing, timesteps.count == 1 || (stepping == "ddim" && trainSteps % timesteps.count == 0) {
      grid = (.trailing, 0)
    } else if timesteps.count == 1 {
      grid = (.leading, timesteps[0])
    } else {
      throw DistillError.invalidValue(
        location: "\(configPath): generator.timesteps",
        expected: "DDIM steps on diffusers' trailing grid (\(trailing)) or one step",
        found: "\(timesteps) with \(stepping) stepping")
    }
    let scheduler: [String: JSONValue] = [
      "_class_name": .string("DDIMScheduler"), "num_train_timesteps": .number(Double(trainSteps)),
      "prediction_type": .string(unet.prediction.rawValue), "timestep_spacing": .string(grid.spacing.rawValue),
      "clip_sample": .bool(clipSample), "set_alpha_to_one": .bool(true), "steps_offset": .number(Double(grid.offset)),
      timestepsKey: .array(timesteps.map { .number(Double($0)) }),
    ].merging(diffusersBetas(unet.scheduleConfig ?? ScheduleConfig())) { a, _ in a }
    try writeFolder(out) { temporary in
      try unet.unet.save(
        folder: temporary, extraConfig: unet.nullClass.map { [UNetDenoiser.nullClassKey: .number(Double($0))] } ?? [:])
      try AtomicFileWriter.write(
        Array((JSONValue.object(scheduler).text() + "\n").utf8),
        to: (temporary as NSString).appendingPathComponent("scheduler_config.json"))
    }
    return Summary(timesteps: timesteps, parameterCount: unet.unet.parameterCount, prediction: unet.prediction)
  }

  /// Samples of an exported student folder: DDIM in the folder's steps from `noise`, or from
  /// `count` draws of standard normal noise of `seed` (drawn as `pipeline sample` draws a run's);
  /// a class-conditional student samples class `classLabel`, or sample `i` of class `i mod classes`.
  ///
  /// - Throws: ``DistillError`` naming the file and key: a folder without `config.json` or
  ///   `scheduler_config.json`, without the student's steps, or noise of another shape;
  ///   ``SamplingSettingError`` for a class out of range or given to a student without classes.
  public static func sample(
    folder: String, count: Int, seed: UInt64, noise given: Tensor? = nil, classLabel: Int? = nil
  ) throws -> Tensor {
    guard !StableDiffusionFolder.isTextToImage(folder: folder) else {
      throw DistillError.invalidValue(
        location: folder,
        expected: "an exported UNet2DModel student (a text-to-image run's denoiser/ is a Stable-Diffusion-layout folder: sample it with `pipeline sample-teacher --teacher \(folder) --prompt P`)",
        found: "a Stable-Diffusion-layout folder")
    }
    let denoiser = try UNetDenoiser.load(diffusersFolder: folder)
    let path = (folder as NSString).appendingPathComponent("scheduler_config.json")
    var reader = try JSONObjectReader(file: path, missing: "cannot read: an exported student holds scheduler_config.json")
    let spacing: TimestepSpacing = try reader.choice("timestep_spacing", default: .trailing)
    let sampler = ddim(
      denoiser, clipSample: try reader.bool("clip_sample", default: false), spacing: spacing,
      stepsOffset: try reader.int("steps_offset", default: 0))
    guard let timesteps = try reader.intArray(timestepsKey), !timesteps.isEmpty,
      timesteps == sampler.timesteps(steps: timesteps.count)
    else {
      throw DistillError.invalidValue(
        location: "\(path): \(timestepsKey)",
        expected: "the student's timesteps on the grid of timestep_spacing and steps_offset", found: "none that fit")
    }
    guard let size = denoiser.sampleShape else {
      throw DistillError.invalidValue(
        location: "\(folder)/config.json: sample_size", expected: "the student's sample size", found: "null")
    }
    var rng = RandomGenerator(seed: seed)
    let noise = given ?? Tensor.normal([count] + size, using: &rng)
    guard Array(noise.shape.dropFirst()) == size, noise.shape[0] > 0 else {
      throw DistillError.invalidValue(location: "noise", expected: "[N] + \(size)", found: "\(noise.shape)")
    }
    let n = noise.shape[0]
    let condition: Condition
    switch (denoiser.classes, classLabel) {
    case (nil, nil): condition = .none
    case (nil, let label?):
      throw SamplingSettingError(setting: .classLabel, expected: "no class for a student without classes", found: String(label))
    case (let classes?, let label):
      if let label, !(0..<classes.count).contains(label) {
        throw SamplingSettingError(setting: .classLabel, expected: "a class in 0..<\(classes.count)", found: String(label))
      }
      condition = Condition(labels: (0..<n).map { label ?? $0 % classes.count })
    }
    return withoutGradients {
      sampler.sample(
        model: { x, t in denoiser(x, timesteps: t, condition: condition) }, initialNoise: noise, steps: timesteps.count)
    }
  }

  /// The sampler of an exported student: diffusers' DDIM as the folder configures it.
  static func ddim(
    _ denoiser: UNetDenoiser, clipSample: Bool = false, spacing: TimestepSpacing = .trailing, stepsOffset: Int = 0
  ) -> DDIMSampler {
    DDIMSampler(
      schedule: denoiser.schedule, prediction: denoiser.prediction, clipSample: clipSample, useClippedModelOutput: true,
      setAlphaToOne: true, spacing: spacing, stepsOffset: stepsOffset)
  }

  /// The beta keys of a scheduler config.
  static func diffusersBetas(_ config: ScheduleConfig) -> [String: JSONValue] {
    [
      "beta_schedule": .string(config.betaSchedule.rawValue), "beta_start": .number(config.betaStart),
      "beta_end": .number(config.betaEnd), "rescale_betas_zero_snr": .bool(config.rescaleZeroTerminalSNR),
      "trained_betas": config.trainedBetas.map { .array($0.map(JSONValue.number)) } ?? .null,
    ]
  }

  /// Fills a hidden sibling of `out` with `body`, then renames it to `out` (which must be
  /// missing or empty).
  static func writeFolder(_ out: String, _ body: (String) throws -> Void) throws {
    let manager = FileManager.default
    if let contents = try? manager.contentsOfDirectory(atPath: out) {
      guard contents.isEmpty else {
        throw DistillError.invalidValue(location: out, expected: "a new or empty folder", found: "\(contents.count) entries")
      }
      try manager.removeItem(atPath: out)
    }
    let temporary = AtomicFileWriter.makeTemporaryPath(beside: out)
    do {
      try manager.createDirectory(atPath: temporary, withIntermediateDirectories: true)
      try body(temporary)
      guard rename(temporary, out) == 0 else {
        throw DistillError.io(path: out, reason: "cannot move \(temporary) into place")
      }
    } catch {
      try? manager.removeItem(atPath: temporary)
      throw error
    }
  }
}
