import Foundation
import Hummingbird
import PaymentsCore

/// Every error the API returns: `{"error":{"code":…,"message":…}}` with its status.
public struct APIError: Error, HTTPResponseError, Equatable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields = [:]

    public init(status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response { response }

    var response: Response {
        struct Body: Encodable {
            struct Inner: Encodable { var code: String; var message: String }
            var error: Inner
        }
        let data = (try? JSONEncoder().encode(Body(error: .init(code: code, message: message)))) ?? Data("{}".utf8)
        var headers = self.headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    package static func badRequest(_ code: String, _ message: String) -> APIError { APIError(status: .badRequest, code: code, message: message) }

    static func unavailable(_ error: any Error) -> APIError {
        APIError(status: .serviceUnavailable, code: "database_unavailable",
                 message: "the database cannot be reached right now; retry later (\(describe(error)))",
                 headers: [.retryAfter: "1"])
    }

    static let internalError = APIError(status: .internalServerError, code: "internal_error", message: "internal error")
}
