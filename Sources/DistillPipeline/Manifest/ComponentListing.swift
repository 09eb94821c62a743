import DistillCore

/// The text of `pipeline components`, and of the component tables of docs/manifest.md.
public enum ComponentListing {
  /// Plain text (`pipeline components`), or Markdown (`--markdown`: the "Components" section
  /// of docs/manifest.md, which a test keeps equal to it).
  public static func text(
    _ registry: ComponentRegistry, kinds: [ComponentKind] = ComponentKind.allCases, markdown: Bool = false
  ) -> String {
    var out = ""
    for kind in kinds {
      let types = registry.components(of: kind)
      guard !types.isEmpty else { continue }
      out += markdown ? "### \(kind.rawValue) (`\(kind.manifestLocation)`)\n\n" : "\(kind.rawValue) (\(kind.manifestLocation))\n"
      for type in types {
        out += markdown ? "- **`\(type.id)`**: \(type.summary)\n" : "  \(type.id): \(type.summary)\n"
        for spec in type.allParameters {
          let value =
            spec.isRequired
            ? "required" : spec.defaultValue == .null ? "optional" : "default \(spec.defaultValue!.text(pretty: false))"
          out += (markdown ? "  - " : "    ") + "\(spec.name) (\(spec.expected); \(value)): \(spec.summary)\n"
        }
      }
      out += "\n"
    }
    return out
  }
}
