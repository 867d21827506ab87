import Foundation
import Hummingbird
import PaymentsCore

/// Every error the API returns: `{"error":{"code":…,"message":…}}` with its status.
struct APIError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var headers: HTTPFields = [:]

    func response(from request: Request, context: some RequestContext) throws -> Response { response }

    var response: Response { Self.response(status: status, code: code, message: message, headers: headers) }

    static func response(status: HTTPResponse.Status, code: String, message: String, headers extra: HTTPFields = [:]) -> Response {
        struct Body: Encodable {
            struct Inner: Encodable { var code: String; var message: String }
            var error: Inner
        }
        let data = (try? JSONEncoder().encode(Body(error: .init(code: code, message: message)))) ?? Data("{}".utf8)
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func badRequest(_ code: String, _ message: String) -> APIError { APIError(status: .badRequest, code: code, message: message) }

    static func unavailable(_ error: any Error) -> APIError {
        APIError(status: .serviceUnavailable, code: "database_unavailable",
                 message: "the database cannot be reached right now; retry later (\(describe(error)))",
                 headers: [.retryAfter: "1"])
    }
}

/// The outermost responder: whatever happens inside (an unknown route, a thrown error, a
/// framework error such as a body over the limit), the client gets the JSON error shape,
/// and database outages become 503, never a bare 500.
struct JSONErrorResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == BasicRequestContext {
    typealias Context = BasicRequestContext
    let inner: Inner

    func respond(to request: Request, context: Context) async throws -> Response {
        do {
            let response = try await inner.respond(to: request, context: context)
            guard response.status.code >= 400, response.headers[.contentType] != "application/json" else { return response }
            return Self.translate(status: response.status)
        } catch let error as APIError {
            return error.response
        } catch let error as HTTPError {
            return Self.translate(status: error.status, message: error.body)
        } catch let error as ValidationError {
            return APIError.response(status: .badRequest, code: error.code, message: error.message)
        } catch where isTransientDatabaseError(error) {
            context.logger.warning("database unavailable", metadata: ["error": "\(describe(error))"])
            return APIError.unavailable(error).response
        } catch let error as PaymentsError {
            if case .unreachable = error { return APIError.unavailable(error).response }
            context.logger.error("request failed", metadata: ["error": "\(describe(error))"])
            return APIError.response(status: .internalServerError, code: "internal_error", message: "internal error")
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(describe(error))"])
            return APIError.response(status: .internalServerError, code: "internal_error", message: "internal error")
        }
    }

    static func translate(status: HTTPResponse.Status, message: String? = nil) -> Response {
        let (code, text): (String, String) = switch status.code {
        case 404: ("not_found", "no such route")
        case 405: ("method_not_allowed", "method not allowed on this route")
        case 413: ("body_too_large", "request body is larger than \(APIRoutes.maxBodyBytes) bytes")
        case 400: ("bad_request", message ?? "bad request")
        default: (status.code >= 500 ? "internal_error" : "bad_request", message ?? status.reasonPhrase)
        }
        return APIError.response(status: status, code: code, message: text)
    }
}
