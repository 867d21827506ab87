import Foundation
import NIOCore

/// Server-sent events framing (text/event-stream): `event:` and one `data:` line of
/// JSON, a blank line after. JSON has no raw newline, so one data line always holds it.
enum ServerSentEvent {
    static let encoder = JSONEncoder()

    static func encode(name: String, _ value: some Encodable) -> ByteBuffer? {
        guard let json = try? encoder.encode(value) else { return nil }
        var buffer = ByteBuffer()
        buffer.writeString("event: \(name)\ndata: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }

    /// How long a browser waits before reconnecting after the stream ends.
    static func retry(milliseconds: Int) -> ByteBuffer { ByteBuffer(string: "retry: \(milliseconds)\n\n") }
}
