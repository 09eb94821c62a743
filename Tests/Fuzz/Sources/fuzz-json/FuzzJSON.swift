import DistillCore
import Foundation
import FuzzSupport

/// libFuzzer entry for `JSONValue.parse`, the strict parser under every JSON document a user
/// gives (manifests, config.json, denoiser.json, scheduler configs).
///
/// Each parsed document is walked with every typed accessor of `JSONObjectReader` (what the
/// decoders above it call), re-encoded and re-parsed (which must give the same value), and
/// then handed to ``validateAsManifest(_:)``.
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

/// Where manifest validation joins the harness once the manifest layer can decode a
/// `JSONValue`: call its decoder here and accept only `DistillError`s, e.g.
/// `do { _ = try Manifest.decode(value, source: "fuzz.json") } catch is DistillError {}`.
func validateAsManifest(_ value: JSONValue) {}

@main enum FuzzJSON {
  static func main() { runFuzzer(fuzzOneInput) }
}
