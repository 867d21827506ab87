import Foundation
import Testing
@testable import PaymentsCore

/// The charge path's JSON without Foundation must read every body exactly as the general
/// path does, and hand everything it is not sure of to it.
@Suite struct FlatJSONTests {
    static let agreeing: [String] = [
        #"{}"#, #" { } "#, "{\n\t\"a\" : 1 ,\r\n \"b\":\"x\"}",
        #"{"amount_minor": 1234, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}"#,
        #"{"a": -0, "b": 0, "c": 9223372036854775807, "d": -9223372036854775808}"#,
        #"{"t": true, "f": false, "n": null}"#,
        #"{"s": "quote \" backslash \\ slash \/ controls \b\f\n\r\t"}"#,
        #"{"u": "\u00e9\u20AC\ud83d\ude00", "raw": "é€😀"}"#,
        #"{"a\u0062": 1}"#,
    ]

    @Test(arguments: agreeing) func readsAsTheGeneralPathDoes(_ text: String) throws {
        let flat = try #require(FlatJSON.object(Array(text.utf8)), "the flat reader refused \(text)")
        #expect(JSONValue.object(flat) == (try JSONValue.parseGeneral(Data(text.utf8))))
    }

    static let handedOn: [String] = [
        #"[]"#, #"1"#, #""x""#, #"{"a": {"b": 1}}"#, #"{"a": [1]}"#, #"{"a": 1.5}"#, #"{"a": 1e3}"#, #"{"a": 1E3}"#,
        #"{"a": 9223372036854775808}"#, #"{"a": -9223372036854775809}"#, #"{"a": 01}"#, #"{"a": -}"#, #"{"a": +1}"#,
        #"{"a": 1, "a": 2}"#, #"{"a": 1,}"#, #"{"a" 1}"#, #"{"a": 1} x"#, #"{"a": 1}}"#, #"{"a": tru}"#, #"{"a": nul}"#,
        "{\"a\": \"line\nbreak\"}", #"{"a": "\x"}"#, #"{"a": "\ud83d"}"#, #"{"a": "\ude00"}"#, #"{"a": "\u12"}"#,
        #"{"a": "unterminated}"#, #"{a: 1}"#, #"{'a': 1}"#, "", "{",
    ]

    @Test(arguments: handedOn) func handsOnWhatItIsNotSureOf(_ text: String) {
        #expect(FlatJSON.object(Array(text.utf8)) == nil)
        // And JSONValue.parse still answers as the general path does.
        let data = Data(text.utf8)
        #expect(Result<JSONValue, JSONValue.ParseError> { () throws(JSONValue.ParseError) in try JSONValue.parse(data) }
                == Result { () throws(JSONValue.ParseError) in try JSONValue.parseGeneral(data) })
    }

    @Test func invalidUTF8IsHandedOn() {
        #expect(FlatJSON.object([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D]) == nil)
    }

    @Test func writesWhatFoundationReadsBack() throws {
        let text = "quote \" backslash \\ newline \n nul \u{0} é 😀"
        let bytes = FlatJSON.encode(["b": .string(text), "a": .integer(-42), "c": .bool(true), "skipped": nil])
        let decoded = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        #expect(decoded?["b"] as? String == text)
        #expect(decoded?["a"] as? Int == -42)
        #expect(decoded?["c"] as? Bool == true)
        #expect(decoded?.keys.sorted() == ["a", "b", "c"])
    }

    @Test func aChargeRecordIsWrittenAsFoundationWritesItAndReadBack() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for record in [ChargeRecord(key: "k-1", chargeID: "ch_x_1", jobID: 7, amountMinor: 1234, currency: "EUR"),
                       ChargeRecord(key: "k\"2", chargeID: "ch_x_2", jobID: 0, amountMinor: 1, currency: "JPY", refunded: true)] {
            #expect(String(decoding: record.json, as: UTF8.self) == String(decoding: try encoder.encode(record), as: UTF8.self))
            #expect(ChargeRecord.decode(record.json) == record)
        }
        // A provider's extra nested field goes through the Codable path.
        let nested = #"{"key":"k","charge_id":"c","job_id":1,"amount_minor":5,"currency":"EUR","metadata":{"a":1}}"#
        #expect(ChargeRecord.decode(Array(nested.utf8)) == ChargeRecord(key: "k", chargeID: "c", jobID: 1, amountMinor: 5, currency: "EUR"))
        #expect(ChargeRecord.decode(Array(#"{"key":"k"}"#.utf8)) == nil)
    }
}
