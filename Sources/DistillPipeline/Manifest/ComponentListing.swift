import DistillCore

/// The text of `pipeline components`, and of the component tables of docs/manifest.md.
public enum ComponentListing {
  public static func text(_ registry: ComponentRegistry, kinds: [ComponentKind] = ComponentKind.allCases) -> String {
    var out = ""
    for kind in kinds {
      let types = registry.components(of: kind)
      guard !types.isEmpty else { continue }
      out += "\(kind.rawValue) (\(kind.manifestLocation))\n"
      for type in types {
        out += "  \(type.id): \(type.summary)\n"
        for spec in type.parameters {
          let value =
            spec.isRequired
            ? "required" : spec.defaultValue == .null ? "optional" : "default \(spec.defaultValue!.text(pretty: false))"
          out += "    \(spec.name) (\(spec.expected); \(value)): \(spec.summary)\n"
        }
      }
      out += "\n"
    }
    return out
  }
}
