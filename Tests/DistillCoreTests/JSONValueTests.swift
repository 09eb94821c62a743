import Foundation
import Testing

@testable import DistillCore

@Suite struct JSONValueTests {
  func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Data(text.utf8), source: "m.json") }

  func message(_ text: String) -> String {
    do {
      _ = try parse(text)
      return ""
    } catch {
      return String(describing: error)
    }
  }

  @Test func parsesEveryKindOfValue() throws {
    let value = try parse(#"{"a": [1, 2.5, -3e2], "b": {"c": null, "d": true}, "e": "x\u00e9"}"#)
    #expect(
      value
        == .object([
          "a": .array([.number(1), .number(2.5), .number(-300)]),
          "b": .object(["c": .null, "d": .bool(true)]), "e": .string("xé"),
        ]))
  }

  @Test func malformedJSONNamesFileLineAndColumn() {
    #expect(message("{\n  \"a\": 1,\n  \"b\": ]\n}") == "m.json: not valid JSON: unexpected character ']' at line 3, column 8")
    #expect(message("{\"a\": 1,}").contains("line 1"))
    #expect(message("").contains("empty document"))
    #expect(message("{\"a\": 1} x").contains("unexpected characters after the JSON value"))
  }

  @Test func duplicateKeysAreRejected() {
    #expect(message(#"{"seed": 1, "seed": 2}"#).contains("duplicate key \"seed\""))
  }

  @Test func objectReaderNamesKeyExpectedAndFound() throws {
    var reader = try JSONObjectReader(parse(#"{"steps": "many", "lr": 0.1}"#), location: "m.json")
    #expect(throws: DistillError.invalidValue(location: "m.json: steps", expected: "an integer", found: "\"many\"")) {
      try reader.int("steps")
    }
    #expect(try reader.double("lr") == 0.1)
  }

  @Test func unknownKeysGetADidYouMean() throws {
    var reader = try JSONObjectReader(parse(#"{"stesp": 3}"#), location: "m.json")
    _ = try reader.int("steps")
    #expect(throws: DistillError.invalidValue(location: "m.json: stesp", expected: "a known key (did you mean \"steps\"?)", found: "an unknown key")) {
      try reader.rejectUnknownKeys()
    }
  }
}

/// Range checks on numbers from JSON documents (docs/reliability.md, "Bounds").
@Suite struct JSONValueBoundsTests {
  func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Data(text.utf8), source: "m.json") }

  @Test func numbersBeyondDoubleRangeAreRefusedWithTheirPosition() throws {
    for text in ["1e400", "-1e400", "[0, 1e309]", "{\"a\":\n 123456789e999}"] {
      #expect(throws: DistillError.self) { try parse(text) }
    }
    do {
      _ = try parse("{\"a\":\n 123456789e999}")
    } catch {
      #expect(String(describing: error) == "m.json: not valid JSON: number 123456789e999 is out of range at line 2, column 2")
    }
    // Underflow rounds to zero like any other decimal; the largest doubles are fine.
    #expect(try parse("[1e-400, 1.7976931348623157e308]") == .array([.number(0), .number(.greatestFiniteMagnitude)]))
  }

  @Test func integerArraysBeyondIntRangeThrowInsteadOfTrapping() throws {
    // `Int(1e300)` trapped in `intArray` (`int` already bounded the value).
    for text in [#"{"a": [1, 1e300]}"#, #"{"a": [-9.3e18]}"#, #"{"a": [1e15]}"#] {
      var reader = try JSONObjectReader(parse(text), location: "m.json")
      #expect(throws: DistillError.self) { _ = try reader.intArray("a") }
    }
    var reader = try JSONObjectReader(parse(#"{"a": [0, -5, 999999999999999]}"#), location: "m.json")
    #expect(try reader.intArray("a") == [0, -5, 999_999_999_999_999])
  }
}

extension JSONValueBoundsTests {
  @Test func floatsBeyondFloatRangeThrowInsteadOfBecomingInfinite() throws {
    // Found by fuzz-unet-config: `"norm_eps": 1e40` is a finite Double, an infinite Float.
    var reader = try JSONObjectReader(parse(#"{"eps": 1e40, "big": -3.4e38, "tiny": 1e-50}"#), location: "config.json")
    do {
      _ = try reader.float("eps", default: 1)
      Issue.record("1e40 read as a Float")
    } catch let error as DistillError {
      #expect(error.description.hasPrefix("config.json: eps: expected a number of magnitude below 3.4028235e+38, found"), "\(error)")
    }
    #expect(try reader.float("big", default: 0) == -3.4e38)
    #expect(try reader.float("tiny", default: 1) == 0)
    #expect(try reader.float("absent", default: 0.5) == 0.5)
  }
}
