import NIOCore
import PostgresNIO

/// A Swift enum stored in a `text` column: bound and decoded by its raw value, so SQL
/// parameters and results carry the enum, never hand-written strings. Arrays of it bind
/// as `text[]` (for `unnest`).
public protocol PostgresTextEnum: RawRepresentable, PostgresNonThrowingEncodable, PostgresArrayEncodable,
    PostgresDecodable, PostgresArrayDecodable where RawValue == String {}

extension PostgresTextEnum {
    public static var psqlType: PostgresDataType { .text }
    public static var psqlFormat: PostgresFormat { .binary }
    public static var psqlArrayType: PostgresDataType { .textArray }

    public func encode<E: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<E>) {
        byteBuffer.writeString(rawValue)
    }

    public init<D: PostgresJSONDecoder>(from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat,
                                        context: PostgresDecodingContext<D>) throws {
        let text = try String(from: &buffer, type: type, format: format, context: context)
        guard let value = Self(rawValue: text) else { throw PostgresDecodingError.Code.failure }
        self = value
    }
}
