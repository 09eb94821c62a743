import BuiltInComponents
import DistillCore
import DistillPipeline
import Foundation
import FuzzSupport

/// libFuzzer entry for `JSONValue.parse`, the strict parser under every JSON document a user
/// gives (manifests, config.json, denoiser.json, scheduler configs), and for the manifest
/// decoder above it.
///
/// Each parsed document is walked with every typed accessor of `JSONObjectReader` (what the
/// decoders above it call), re-encoded and re-parsed (which must give the same value), and
/// then validated as a manifest (``validateAsManifest(_:)``).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
  let bytes = data.map { Data(bytes: $0, count: count) } ?? Data()
  let value: JSONValue
  do {
    value = try JSONValue.parse(bytes, source: "fuzz.json")
  } catch is DistillError {
    return 0
  } catch {
    fatalError("not a DistillError: \(error)")
  }
  walk(value, location: "fuzz.json")
  checkRoundTrip(value)
  validateAsManifest(value)
  return 0
}

/// Reads every member of every object through each typed accessor; errors are expected,
/// traps are findings.
func walk(_ value: JSONValue, location: String) {
  _ = value.summary
  switch value {
  case .array(let items):
    for (i, item) in items.enumerated() { walk(item, location: "\(location)[\(i)]") }
  case .object(let members):
    var reader = try! JSONObjectReader(value, location: location)
    for (key, member) in members {
      _ = try? reader.int(key)
      _ = try? reader.double(key)
      _ = try? reader.float(key, default: 0)
      _ = try? reader.bool(key, default: false)
      _ = try? reader.string(key)
      _ = try? reader.choice(key, ["linear", "scaled_linear", "squaredcos_cap_v2"], default: "linear")
      _ = try? reader.intArray(key)
      _ = try? reader.stringArray(key)
      _ = closestMatch(to: key, among: ["format", "version", "network", "schedule", "prediction"])
      walk(member, location: "\(location): \(key)")
    }
    try! reader.rejectUnknownKeys()
  default:
    break
  }
}

/// Encoding a parsed value and parsing the result must give the value back.
func checkRoundTrip(_ value: JSONValue) {
  let encoded: Data
  do {
    encoded = try JSONEncoder().encode(value)
  } catch {
    fatalError("a parsed value does not encode: \(error)")
  }
  let reparsed = try! JSONValue.parse(encoded, source: "round-trip.json")
  precondition(reparsed == value, "round trip changed the value: \(String(decoding: encoded, as: UTF8.self))")
}

/// The registry `pipeline` validates manifests with: every built-in component.
nonisolated(unsafe) let registry = ComponentRegistry.standard()

/// Paths in a fuzzed manifest resolve against this folder: an existing, empty, per-process
/// folder, so that `.` exists and any other relative path does not.
let manifestFolder = ScratchFile(name: "unused").folder

/// Validates the document as a manifest, as `pipeline validate` does before building anything.
///
/// A refusal must be a ``ManifestError`` (the problems with their JSON paths) or a
/// ``DistillError``; anything else, or a trap, is a finding. An accepted manifest must then
/// behave as a run folder needs it to: its resolved form (what `manifest.json` holds) is
/// written as text and read back unchanged, and validates again to the same resolved form, so
/// that `--resume`, which compares the two, accepts the run it started.
func validateAsManifest(_ value: JSONValue) {
  let manifest: Manifest
  do {
    manifest = try Manifest.decode(
      value, source: "fuzz.json", baseDirectory: manifestFolder, fallbackName: "fuzz", registry: registry)
  } catch is ManifestError {
    return
  } catch is DistillError {
    return
  } catch {
    fatalError("the manifest decoder threw neither a ManifestError nor a DistillError: \(error)")
  }
  let text = manifest.resolvedJSON.text() + "\n"
  let saved: JSONValue
  do {
    saved = try JSONValue.parse(Data(text.utf8), source: "manifest.json")
  } catch {
    fatalError("the resolved manifest does not read back: \(error)\n\(text)")
  }
  precondition(saved == manifest.resolvedJSON, "the resolved manifest changed through its text:\n\(text)")
  let again: Manifest
  do {
    again = try Manifest.decode(
      saved, source: "manifest.json", baseDirectory: manifestFolder, fallbackName: "other", registry: registry)
  } catch {
    fatalError("the resolved manifest does not validate again: \(error)\n\(text)")
  }
  precondition(
    again.resolvedJSON == manifest.resolvedJSON,
    "validating the resolved manifest changed it:\n\(text)\n\(again.resolvedJSON.text())")
}

@main enum FuzzJSON {
  static func main() { runFuzzer(fuzzOneInput) }
}
