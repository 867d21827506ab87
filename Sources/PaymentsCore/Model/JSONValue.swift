import Foundation

/// Any JSON value, decoded without a schema so that validation can name the exact
/// field and problem instead of surfacing a DecodingError.
public enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null; return }
        if let value = try? container.decode(Bool.self) { self = .bool(value); return }
        if let value = try? container.decode(Int64.self) { self = .integer(value); return }
        if let value = try? container.decode(Double.self) { self = .number(value); return }
        if let value = try? container.decode(String.self) { self = .string(value); return }
        if let value = try? container.decode([JSONValue].self) { self = .array(value); return }
        self = .object(try container.decode([String: JSONValue].self))
    }

    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        /// The text is not JSON at all (as opposed to JSON of the wrong shape).
        case malformed
        /// An object names a field twice: parsers disagree on which value wins (a proxy
        /// may act on the other one), so such a body is refused.
        case duplicateField(String)

        public var description: String {
            switch self {
            case .malformed: "malformed JSON"
            case let .duplicateField(name): "field '\(name.prefix(64))' appears twice; send each field once"
            }
        }
    }

    public static func parse(_ data: Data) throws(ParseError) -> JSONValue {
        // Flat objects, the bodies of the charge path, without Foundation (see FlatJSON).
        if let object = FlatJSON.object(data) { return .object(object) }
        return try parseGeneral(data)
    }

    /// Any JSON, through Foundation, then the duplicate-key scan.
    static func parseGeneral(_ data: Data) throws(ParseError) -> JSONValue {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw .malformed
        }
        if let name = JSONDuplicateKeys.first(in: data) { throw .duplicateField(name) }
        return value
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer: "an integer"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}
