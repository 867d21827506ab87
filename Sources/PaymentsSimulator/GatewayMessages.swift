import Foundation
import NIOCore
import NIOHTTP1

/// One request to the simulated provider, as its server read it.
struct GatewayRequest {
    var method: HTTPMethod
    var path: Substring
    var query: Substring
    var headers: HTTPHeaders
    var body: ByteBuffer

    init(head: HTTPRequestHead, body: ByteBuffer) {
        let uri = head.uri[...]
        if let mark = uri.firstIndex(of: "?") {
            path = uri[..<mark]
            query = uri[uri.index(after: mark)...]
        } else {
            path = uri
            query = ""
        }
        method = head.method
        headers = head.headers
        self.body = body
    }

    /// The first value of query parameter `name`, percent-decoded (`+` stays a `+`, as the
    /// Hummingbird server before this one read it); nil when it is absent. A value that is
    /// not valid percent-encoding is a 400, never "absent": a lookup would become the
    /// settlement listing.
    func queryParameter(_ name: String) throws(GatewayError) -> String? {
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == name else { continue }
            let raw = parts.count > 1 ? String(parts[1]) : ""
            guard let value = raw.removingPercentEncoding else {
                throw GatewayError.badRequest("invalid_query", "the query parameter '\(name)' is not valid percent-encoding")
            }
            return value
        }
        return nil
    }

    func header(_ name: String) -> String? { headers.first(name: name) }
}

/// One answer: its status, extra headers and JSON body.
struct GatewayAnswer: Sendable {
    var status: HTTPResponseStatus
    var headers: [(String, String)] = []
    var body: [UInt8]
    /// The answer to a HEAD: its headers (with the body's length), not its body.
    var headOnly = false

    static func json(_ body: [UInt8], status: HTTPResponseStatus = .ok, headers: [(String, String)] = []) -> Self {
        GatewayAnswer(status: status, headers: headers, body: body)
    }

    static func encoded(_ value: some Encodable) -> Self {
        .json(Array((try? JSONEncoder().encode(value)) ?? Data("{}".utf8)))
    }
}

/// Every refusal of the simulated provider: `{"error":{"code":…,"message":…}}` with its
/// status, as the product's own API answers (what HTTPGateway reads the code from).
struct GatewayError: Error, Equatable {
    var status: HTTPResponseStatus
    var code: String
    var message: String
    /// Seconds the caller should wait before it asks again (`Retry-After`), if any.
    var retryAfter: Int?

    init(_ status: HTTPResponseStatus, _ code: String, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    static func badRequest(_ code: String, _ message: String) -> Self { GatewayError(.badRequest, code, message) }

    /// What a network blip looks like to the caller; the same key may be retried.
    static let unavailable = GatewayError(.serviceUnavailable, "provider_unavailable", "temporarily unavailable (simulated); retry with the same key")

    var answer: GatewayAnswer {
        struct Body: Encodable {
            struct Inner: Encodable { var code: String; var message: String }
            var error: Inner
        }
        var answer = GatewayAnswer.encoded(Body(error: .init(code: code, message: message)))
        answer.status = status
        if let retryAfter { answer.headers.append(("Retry-After", "\(retryAfter)")) }
        return answer
    }
}

extension GatewayRequest {
    static let idempotencyKey = "Idempotency-Key"
    static let requestDeadline = "Request-Deadline"
    static let idempotentReplayed = "Idempotent-Replayed"
}
