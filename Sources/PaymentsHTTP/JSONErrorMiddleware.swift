import Hummingbird
import PaymentsCore

/// Whatever happens behind it (an unknown route, a thrown error, a framework error such
/// as a body over the limit), the client gets the JSON error shape, and database
/// outages become 503 with Retry-After, never a bare 500.
package struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    package init() {}

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            guard response.status.code >= 400, response.headers[.contentType] != "application/json" else { return response }
            return Self.translate(status: response.status).response
        } catch let error as APIError {
            return error.response
        } catch let error as HTTPError {
            return Self.translate(status: error.status, message: error.body).response
        } catch let error as any HTTPResponseError {
            // Framework errors that carry a status, such as a body over the limit.
            return Self.translate(status: error.status).response
        } catch let error as PaymentValidationError {
            return APIError.badRequest(error.code, error.message).response
        } catch where isTransientDatabaseError(error) {
            context.logger.warning("database unavailable", metadata: ["error": "\(describe(error))"])
            return APIError.unavailable(error).response
        } catch let error as PaymentsError {
            if case .unreachable = error { return APIError.unavailable(error).response }
            context.logger.error("request failed", metadata: ["error": "\(describe(error))"])
            return APIError.internalError.response
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(describe(error))"])
            return APIError.internalError.response
        }
    }

    static func translate(status: HTTPResponse.Status, message: String? = nil) -> APIError {
        let (code, text): (String, String) = switch status.code {
        case 404: ("not_found", "no such route")
        case 405: ("method_not_allowed", "method not allowed on this route")
        case 413: ("body_too_large", "request body is larger than \(maxPaymentBodyBytes) bytes")
        case 400: ("bad_request", message ?? "bad request")
        default: (status.code >= 500 ? "internal_error" : "bad_request", message ?? status.reasonPhrase)
        }
        return APIError(status: status, code: code, message: text)
    }
}
