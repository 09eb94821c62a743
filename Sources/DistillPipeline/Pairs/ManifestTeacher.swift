import DistillCore
import DistillDiffusion

extension AssembledPipeline {
  /// Builds only the teacher of `manifest` (with its schedule), for tools that sample it
  /// without training (`pipeline precompute`).
  ///
  /// - Throws: ``ManifestError`` when the manifest has no teacher or the teacher's build fails
  ///   (a missing folder, weights that do not fit), naming the entry.
  public static func buildTeacher(_ manifest: Manifest, registry: ComponentRegistry) throws -> any Denoiser {
    guard let entry = manifest.teacher else {
      throw ManifestError(
        source: manifest.source, problems: [ManifestProblem("teacher", "missing: precomputing pairs needs a teacher")])
    }
    func building<T>(_ entry: ComponentEntry, _ body: () throws -> T) throws -> T {
      do {
        return try body()
      } catch let error as DistillError {
        throw ManifestError(source: manifest.source, problems: [ManifestProblem(entry.path, error.description)])
      }
    }
    let scheduleType = registry.component(.schedule, manifest.schedule.type) as! any ScheduleComponent.Type
    let (scheduleConfig, prediction) = try building(manifest.schedule) { try scheduleType.make(manifest.schedule) }
    let context = BuildContext(
      manifest: manifest, registry: registry, scheduleConfig: scheduleConfig, prediction: prediction)
    let type = registry.component(.teacher, entry.type) as! any TeacherComponent.Type
    return try building(entry) { try type.make(entry, context) }
  }
}
