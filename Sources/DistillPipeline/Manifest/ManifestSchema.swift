import DistillCore

/// The manifest's JSON Schema (draft 2020-12), generated from the registry, so that every
/// registered component, built-in or a user's, appears with its parameters and defaults.
public enum ManifestSchema {
  public static func schema(_ registry: ComponentRegistry) -> JSONValue {
    var defs: [String: JSONValue] = [:]
    for kind in ComponentKind.allCases {
      let variants = registry.components(of: kind).map { entrySchema($0) }
      defs[kind.rawValue] = .object(["oneOf": .array(variants)])
    }
    defs["training"] = objectSchema(TrainingSettings.specs, description: "The training loop.")
    var evaluation = objectSchema(EvaluationSettings.specs, description: "Evaluation on fixed noise.")
    if case .object(var object) = evaluation, case .object(var properties)? = object["properties"] {
      let ids = registry.ids(of: .metric).map(JSONValue.string)
      properties["metrics"] = .object([
        "type": "array", "description": "metric entries, or their ids",
        "items": .object(["oneOf": .array([ref(.metric), .object(["enum": .array(ids)])])]),
      ])
      object["properties"] = .object(properties)
      evaluation = .object(object)
    }
    defs["evaluation"] = evaluation

    let top = objectSchema(Manifest.topLevelSpecs, description: nil) { spec in
      switch spec.name {
      case "scores": return .object(["type": "object", "additionalProperties": ref(.score)])
      case "losses": return .object(["type": "array", "minItems": 1, "items": ref(.loss)])
      case "training", "evaluation": return .object(["$ref": .string("#/$defs/\(spec.name)")])
      default: return valueSchema(spec.kind)
      }
    }
    return top.setting("$schema", "https://json-schema.org/draft/2020-12/schema").setting("title", "Distillery manifest")
      .setting("$defs", .object(defs))
  }

  static func ref(_ kind: ComponentKind) -> JSONValue { .object(["$ref": .string("#/$defs/\(kind.rawValue)")]) }

  static func entrySchema(_ type: any ComponentDescribing.Type) -> JSONValue {
    var schema = objectSchema(type.allParameters, description: type.summary)
    guard case .object(var object) = schema, case .object(var properties)? = object["properties"],
      case .array(var required)? = object["required"]
    else { return schema }
    properties["type"] = .object(["const": .string(type.id)])
    required.insert("type", at: 0)
    object["properties"] = .object(properties)
    object["required"] = .array(required)
    object["title"] = .string(type.id)
    schema = .object(object)
    return schema
  }

  /// An object of `specs`, each property the schema `value` gives it (its kind's by default)
  /// with its summary and default.
  static func objectSchema(
    _ specs: [ParameterSpec], description: String?, value: (ParameterSpec) -> JSONValue = { valueSchema($0.kind) }
  ) -> JSONValue {
    var properties: [String: JSONValue] = [:]
    var required: [JSONValue] = []
    for spec in specs {
      var property = value(spec).setting("description", .string(spec.summary))
      if let fallback = spec.defaultValue, fallback != .null { property = property.setting("default", fallback) }
      properties[spec.name] = property
      if spec.isRequired { required.append(.string(spec.name)) }
    }
    let schema: JSONValue = .object([
      "type": "object", "properties": .object(properties), "required": .array(required),
      "additionalProperties": .bool(false),
    ])
    return description.map { schema.setting("description", .string($0)) } ?? schema
  }

  static func valueSchema(_ kind: ParameterSpec.Kind) -> JSONValue {
    func bounded(_ type: String, _ low: Double, _ high: Double) -> JSONValue {
      var object: [String: JSONValue] = ["type": .string(type)]
      if low.isFinite, abs(low) < 1e15 { object["minimum"] = .number(low) }
      if high.isFinite, abs(high) < 1e15 { object["maximum"] = .number(high) }
      return .object(object)
    }
    switch kind {
    case .number(let r): return bounded("number", r.lowerBound, r.upperBound)
    case .integer(let r): return bounded("integer", Double(r.lowerBound), Double(r.upperBound))
    case .bool: return .object(["type": "boolean"])
    case .string: return .object(["type": "string"])
    case .choice(let choices): return .object(["enum": .array(choices.values.map(JSONValue.string))])
    case .path: return .object(["type": "string", "minLength": 1])
    case .numbers(let count):
      var object: [String: JSONValue] = ["type": "array", "items": .object(["type": "number"])]
      if let count { object["minItems"] = .number(Double(count)); object["maxItems"] = .number(Double(count)) }
      return .object(object)
    case .matrix:
      return .object([
        "type": "array", "minItems": 1,
        "items": .object(["type": "array", "minItems": 1, "items": .object(["type": "number"])]),
      ])
    case .strings: return .object(["type": "array", "items": .object(["type": "string"])])
    case .component(let kind): return ref(kind)
    case .object: return .object(["type": "object"])
    case .reference: return .object(["type": "string"])
    case .list: return .object(["type": "array"])
    }
  }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
  public init(stringLiteral value: String) { self = .string(value) }
  public init(integerLiteral value: Int) { self = .number(Double(value)) }
}
