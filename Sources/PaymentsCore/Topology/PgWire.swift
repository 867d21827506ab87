import NIOCore

/// The few messages of PostgreSQL's wire protocol (version 3) that a client of
/// PgBouncer's admin console needs: start-up, a cleartext password, a simple query. The
/// console takes the simple query protocol only, and PostgresNIO speaks the extended one,
/// hence this.
enum PgWire {
    /// A message from the server: its type byte and its body (without the length).
    struct Message: Equatable {
        var type: UInt8
        var body: ByteBuffer
    }

    static func startup(user: String, database: String) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(Int32(196_608))  // protocol 3.0
        for (key, value) in [("user", user), ("database", database), ("application_name", "payments-dashboard")] {
            body.writeNullTerminated(key)
            body.writeNullTerminated(value)
        }
        body.writeInteger(UInt8(0))
        var message = ByteBuffer()
        message.writeInteger(Int32(body.readableBytes + 4))
        message.writeImmutableBuffer(body)
        return message
    }

    static func password(_ password: String) -> ByteBuffer { typed(UInt8(ascii: "p")) { $0.writeNullTerminated(password) } }
    static func query(_ sql: String) -> ByteBuffer { typed(UInt8(ascii: "Q")) { $0.writeNullTerminated(sql) } }
    static let terminate = typed(UInt8(ascii: "X")) { _ in }

    private static func typed(_ type: UInt8, _ fill: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var body = ByteBuffer()
        fill(&body)
        var message = ByteBuffer()
        message.writeInteger(type)
        message.writeInteger(Int32(body.readableBytes + 4))
        message.writeImmutableBuffer(body)
        return message
    }

    /// Takes every complete message off the front of `buffer`, leaving a partial one.
    static func messages(from buffer: inout ByteBuffer) throws -> [Message] {
        var messages: [Message] = []
        while buffer.readableBytes >= 5 {
            let start = buffer.readerIndex
            guard let type: UInt8 = buffer.getInteger(at: start),
                  let length: Int32 = buffer.getInteger(at: start + 1) else { break }
            guard length >= 4, length <= 16 << 20 else { throw PgWireError.malformed("a message length of \(length)") }
            guard buffer.readableBytes >= 1 + Int(length) else { break }
            buffer.moveReaderIndex(forwardBy: 5)
            let body = buffer.readSlice(length: Int(length) - 4)!
            messages.append(Message(type: type, body: body))
        }
        buffer.discardReadBytes()
        return messages
    }

    /// An ErrorResponse's message and SQLSTATE.
    static func error(_ body: ByteBuffer) -> (message: String, code: String) {
        var body = body
        var fields: [UInt8: String] = [:]
        while let field: UInt8 = body.readInteger(), field != 0 {
            fields[field] = body.readNullTerminatedString() ?? ""
        }
        return (fields[UInt8(ascii: "M")] ?? "unknown error", fields[UInt8(ascii: "C")] ?? "")
    }

    /// A RowDescription's column names.
    static func columnNames(_ body: ByteBuffer) throws -> [String] {
        var body = body
        guard let count: Int16 = body.readInteger() else { throw PgWireError.malformed("a row description without a count") }
        var names: [String] = []
        for _ in 0..<max(0, Int(count)) {
            guard let name = body.readNullTerminatedString(), body.readableBytes >= 18 else {
                throw PgWireError.malformed("a truncated row description")
            }
            body.moveReaderIndex(forwardBy: 18)  // table oid, column, type oid, size, modifier, format
            names.append(name)
        }
        return names
    }

    /// A DataRow's values as text (the simple protocol's format); nil for NULL.
    static func values(_ body: ByteBuffer) throws -> [String?] {
        var body = body
        guard let count: Int16 = body.readInteger() else { throw PgWireError.malformed("a data row without a count") }
        var values: [String?] = []
        for _ in 0..<max(0, Int(count)) {
            guard let length: Int32 = body.readInteger() else { throw PgWireError.malformed("a truncated data row") }
            if length < 0 { values.append(nil); continue }
            guard let value = body.readString(length: Int(length)) else { throw PgWireError.malformed("a truncated data row") }
            values.append(value)
        }
        return values
    }
}

enum PgWireError: Error, Equatable {
    case malformed(String)
}

extension ByteBuffer {
    fileprivate mutating func writeNullTerminated(_ string: String) {
        writeString(string)
        writeInteger(UInt8(0))
    }
}
