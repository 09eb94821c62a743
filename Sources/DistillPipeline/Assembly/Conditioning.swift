import DistillCore
import DistillDiffusion

/// The `guidance` parameter of a loss that asks the teacher (knowledge, progressive and
/// consistency distillation, ADD): classifier-free guidance on every teacher output it uses,
/// so that the student learns the guided teacher.
public let teacherGuidanceParameter = ParameterSpec(
  "guidance", .number(0...100), default: .number(1),
  "classifier-free guidance scale on the teacher's outputs, distilled into the student (1 = none; others need a conditional teacher with a null class)"
)

extension BuildContext {
  /// The teacher as `entry` asks it: with the guidance scale at `entry.key`.
  ///
  /// - Throws: ``DistillError/invalidValue(location:expected:found:)`` at `entry.key` for
  ///   guidance of a teacher without classes or prompts, or without a null class.
  public func guidedTeacher(for entry: ComponentEntry, key: String = "guidance") throws -> any Denoiser {
    let teacher = try requireTeacher(for: entry)
    return try Self.guided(teacher, scale: entry.double(key), location: "\(entry.path).\(key)")
  }

  /// `denoiser` with guidance `scale`, checked at `location`.
  public static func guided(_ denoiser: any Denoiser, scale: Double, location: String) throws -> any Denoiser {
    guard scale != 1, denoiser.prompts == nil else { return denoiser.guided(scale) }
    guard let classes = denoiser.classes else {
      throw DistillError.invalidValue(
        location: location,
        expected: "1 for the unconditional teacher \"\(denoiser.summary)\" (classifier-free guidance needs a conditional teacher)",
        found: "\(scale)")
    }
    guard classes.null != nil else {
      throw DistillError.invalidValue(
        location: location,
        expected: "1: the teacher's \(classes.count) classes have no null class to guide against (set nullClass for a teacher trained with label dropout)",
        found: "\(scale)")
    }
    return denoiser.guided(scale)
  }

  /// Checks that the generator and the teacher agree on classes: a conditional generator needs
  /// a teacher of the same classes; an unconditional one asks a conditional teacher with its
  /// null class, which it must have. Called once the generator is built.
  func checkClasses() throws {
    guard let teacher, let generator else { return }
    if generator.prompts != nil, !(data is any PromptDataSource) {
      throw DistillError.invalidValue(
        location: "data", expected: "a captions data source for the text-conditional generator (the prompts it is trained on)",
        found: data.map { "data of sample shape \($0.sampleShape) without prompts" } ?? "no data")
    }
    switch (generator.classes, teacher.classes) {
    case (nil, nil): return
    case (let g?, let t?) where g.count == t.count: return
    case (let g?, nil):
      throw DistillError.invalidValue(
        location: "generator", expected: "an unconditional generator for the unconditional teacher \"\(teacher.summary)\"",
        found: "a generator of \(g.count) classes")
    case (let g?, let t?):
      throw DistillError.invalidValue(
        location: "generator", expected: "a generator of the teacher's \(t.count) classes", found: "\(g.count) classes")
    case (nil, let t?) where t.null == nil:
      throw DistillError.invalidValue(
        location: "generator",
        expected: "a class-conditional generator (init \"teacher\" copies the classes) for the teacher of \(t.count) classes without a null class",
        found: "an unconditional generator \"\(generatorType)\"")
    case (nil, _?): return
    }
  }
}

extension StepContext {
  /// The condition of this update's data batch for a text-conditional generator (the batch's
  /// prompt embeddings) or a class-conditional one (the batch's labels), ``Condition/none`` for
  /// an unconditional one.
  ///
  /// - Throws: ``DistillError`` naming `data` when the generator is conditional and the batch
  ///   has no labels, or a label is outside its classes.
  public func batchCondition() throws -> Condition {
    if generator.prompts != nil {
      guard let embeddings = try batch().embeddings else {
        throw DistillError.invalidValue(
          location: "data", expected: "prompts for the text-conditional generator", found: "a batch without prompts")
      }
      return Condition(embeddings: embeddings)
    }
    guard let classes = generator.classes else { return .none }
    guard let labels = try batch().labels else {
      throw DistillError.invalidValue(
        location: "data", expected: "labelled data for the class-conditional generator (\(classes.count) classes)",
        found: "a batch without labels")
    }
    if let bad = labels.first(where: { !(0..<classes.count).contains($0) }) {
      throw DistillError.invalidValue(
        location: "data", expected: "class labels in 0..<\(classes.count) (the generator's classes)", found: "label \(bad)")
    }
    return Condition(labels: labels)
  }
}
