import Foundation
import Hummingbird
import PaymentsCore

/// `POST /v1/payments` and `GET /v1/payments/{id}`: input checks and HTTP shape only; the
/// work is the `PaymentsAPI`'s.
/// Largest `POST /v1/payments` body accepted.
let maxPaymentBodyBytes = 16 * 1024

struct PaymentRoutes<API: PaymentsAPI>: Sendable {
    let api: API

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("/v1/payments") { request, context in try await self.create(request, context: context) }
        router.get("/v1/payments/:id") { request, context in try await self.show(request, context: context) }
        router.post("/v1/payments/:id/cancel") { request, context in try await self.cancel(request, context: context) }
    }

    func create(_ request: Request, context: some RequestContext) async throws -> Response {
        guard let key = request.headers[.idempotencyKey] else {
            throw APIError.badRequest("missing_idempotency_key", "the Idempotency-Key header is required")
        }
        guard PaymentRequest.isValidIdempotencyKey(key) else {
            throw APIError.badRequest("invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters without spaces")
        }
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(status: .unsupportedMediaType, code: "unsupported_media_type", message: "send the body as application/json")
        }
        var request = request
        let body = try await request.collectBody(upTo: maxPaymentBodyBytes)
        let json: JSONValue
        do { json = try JSONValue.parse(Data(buffer: body)) } catch {
            switch error {
            case .malformed: throw APIError.badRequest("invalid_json", "the body is not valid JSON")
            case .duplicateField: throw APIError.badRequest("duplicate_field", error.description)
            }
        }
        let payment = try PaymentRequest.validate(json, currencies: try await api.currencies()).get()
        switch try await api.create(payment, idempotencyKey: key) {
        case let .created(job, token):
            context.logger.info("payment accepted", metadata: ["job_id": "\(job.id)"])
            return JSONResponse.make(job, status: .created, headers: [.freshnessToken: token, .location: "/v1/payments/\(job.id)"])
        case let .existing(job, token):
            return JSONResponse.make(job, status: .ok, headers: [.freshnessToken: token, .location: "/v1/payments/\(job.id)"])
        case let .keyReusedWithDifferentBody(existingID):
            throw APIError(status: .conflict, code: "idempotency_key_reused",
                           message: "Idempotency-Key '\(key)' was already used for a different payment (job \(existingID))")
        }
    }

    static func paymentID(_ context: some RequestContext) throws -> Int64 {
        let raw = context.parameters.get("id") ?? ""
        guard let id = Int64(raw), id > 0 else {
            throw APIError.badRequest("invalid_id", "payment id must be a positive integer, got '\(raw.prefix(40))'")
        }
        return id
    }

    /// A cancel is a request: 200 with the payment when no request had ever left for it
    /// (or it was cancelled already); 202 while the gateway has to prove it holds no charge;
    /// 409 `too_late` with the payment when it was charged (it ends `succeeded`), 409
    /// `payment_finished` when it had failed.
    func cancel(_ request: Request, context: some RequestContext) async throws -> Response {
        let id = try Self.paymentID(context)
        guard let result = try await api.cancel(id: id) else {
            throw APIError(status: .notFound, code: "payment_not_found", message: "no payment with id \(id)")
        }
        context.logger.info("cancel requested", metadata: ["job_id": "\(id)", "outcome": "\(result.outcome)"])
        switch result.outcome {
        case .cancelled, .finished(.cancelled):
            return try JSONResponse.make(result.job, status: .ok)
        case .pending:
            return try JSONResponse.make(result.job, status: .accepted, headers: [.retryAfter: "2"])
        case .finished(.succeeded):
            return try CancelRefusal(code: "too_late", message: "payment \(id) was charged before it could be cancelled: it is succeeded", payment: result.job).response
        case let .finished(state):
            return try CancelRefusal(code: "payment_finished", message: "payment \(id) is \(state.rawValue) and cannot be cancelled", payment: result.job).response
        }
    }

    /// A 409 to a cancel: the error, and the payment as it is.
    struct CancelRefusal: Encodable {
        struct Inner: Encodable { var code: String; var message: String }
        var error: Inner
        var payment: Job?
        init(code: String, message: String, payment: Job?) {
            error = Inner(code: code, message: message)
            self.payment = payment
        }
        var response: Response { get throws { try JSONResponse.make(self, status: .conflict) } }
    }

    func show(_ request: Request, context: some RequestContext) async throws -> Response {
        let id = try Self.paymentID(context)
        let token = request.headers[.freshnessToken]
        if let token, !Self.isWALPosition(token) {
            throw APIError.badRequest("invalid_freshness_token", "X-Freshness-Token must be a WAL position such as 0/16B3748, as returned by POST")
        }
        let result = try await api.payment(id: id, freshnessToken: token)
        var headers: HTTPFields = [
            .servedBy: result.source.node,
            .readSource: result.source.kind.rawValue,
            .replicaLag: Self.seconds(result.source.lagSeconds ?? 0),
        ]
        if result.source.viaWritePath { headers[.readFallback] = result.source.reason ?? "primary" }
        guard let job = result.value else {
            throw APIError(status: .notFound, code: "payment_not_found", message: "no payment with id \(id)", headers: headers)
        }
        // Pollers pay nothing for a payment that did not change: 304 without a body. A
        // finished payment never changes again, so it may be kept for a day without asking.
        let tag = Self.eTag(job)
        headers[.eTag] = tag
        headers[.cacheControl] = job.state.isTerminal ? "private, max-age=86400, immutable" : "no-cache"
        if let asked = request.headers[.ifNoneMatch], Self.matches(asked, tag) {
            return Response(status: .notModified, headers: headers)
        }
        return JSONResponse.make(job, status: .ok, headers: headers)
    }

    /// A payment's version: every change of a payment moves its `updated_at` (microseconds)
    /// and a finished one never changes again.
    static func eTag(_ job: Job) -> String {
        // The timestamp's ASCII digits (Character.isNumber asks Unicode for every one).
        "\"\(job.id)-\(String(decoding: job.updatedAt.utf8.filter { $0 >= 0x30 && $0 <= 0x39 }, as: UTF8.self))\""
    }

    /// `seconds` to the millisecond ("0.004"), as `String(format: "%.3f")` prints it but
    /// without its varargs and NSString on every read.
    static func seconds(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e12 else { return String(format: "%.3f", seconds) }
        let millis = Int64((seconds * 1000).rounded())
        let fraction = String(millis % 1000)
        return "\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }

    /// Whether `If-None-Match` (a list of entity tags, weak ones included, or `*`) names `tag`.
    static func matches(_ header: String, _ tag: String) -> Bool {
        header.split(separator: ",").contains { raw in
            let candidate = raw.trimmingCharacters(in: .whitespaces)
            return candidate == "*" || candidate == tag || candidate == "W/" + tag
        }
    }

    /// `XXXXXXXX/XXXXXXXX`: how PostgreSQL prints a pg_lsn.
    static func isWALPosition(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { part in
            (1...8).contains(part.utf8.count) && part.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)  // 0-9 A-F a-f
            }
        }
    }
}
