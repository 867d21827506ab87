import Foundation
import Hummingbird
import PaymentsCore
import Prometheus

/// The HTTP API of DESIGN.md section 6: a thin layer over PaymentService.
typealias HeaderName = HTTPFields.Element.Name

struct APIRoutes: Sendable {
    static let maxBodyBytes = 16 * 1024
    static let freshnessHeader = HeaderName("X-Freshness-Token")!
    static let idempotencyHeader = HeaderName("Idempotency-Key")!
    static let servedByHeader = HeaderName("X-Served-By")!
    static let readSourceHeader = HeaderName("X-Read-Source")!
    static let lagHeader = HeaderName("X-Replica-Lag-Seconds")!
    static let fallbackHeader = HeaderName("X-Read-Fallback")!

    let service: PaymentService
    let metrics: WorkerMetrics
    let gateway: SimulatedGateway?
    let registry: PrometheusCollectorRegistry
    let openAPI: Data
    let currencies: @Sendable () async throws -> Set<String>

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/payments") { request, context in try await self.create(request, context: context) }
        router.get("/v1/payments/:id") { request, context in try await self.show(request, context: context) }
        router.get("/v1/stats") { _, context in try await self.stats(context: context) }
        router.get("/healthz") { _, _ in Self.json(["status": "ok"]) }
        router.get("/readyz") { _, _ in await self.ready() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(bytes: openAPI)))
        }
    }

    // MARK: POST /v1/payments

    func create(_ request: Request, context: BasicRequestContext) async throws -> Response {
        guard let key = request.headers[Self.idempotencyHeader] else {
            throw APIError.badRequest("missing_idempotency_key", "the Idempotency-Key header is required")
        }
        guard PaymentRequest.isValidIdempotencyKey(key) else {
            throw APIError.badRequest("invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters without spaces")
        }
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(status: .unsupportedMediaType, code: "unsupported_media_type", message: "send the body as application/json")
        }
        var request = request
        let body = try await request.collectBody(upTo: Self.maxBodyBytes)
        let json: JSONValue
        do { json = try JSONValue.parse(Data(buffer: body)) } catch {
            throw APIError.badRequest("invalid_json", "the body is not valid JSON")
        }
        let payment = try PaymentRequest.validate(json, currencies: try await currencies()).get()
        switch try await service.create(payment, idempotencyKey: key) {
        case let .created(job, token):
            context.logger.info("payment accepted", metadata: ["job_id": "\(job.id)"])
            return try Self.json(job, status: .created, headers: [Self.freshnessHeader: token, .location: "/v1/payments/\(job.id)"])
        case let .existing(job, token):
            return try Self.json(job, status: .ok, headers: [Self.freshnessHeader: token, .location: "/v1/payments/\(job.id)"])
        case let .keyReusedWithDifferentBody(existingID):
            throw APIError(status: .conflict, code: "idempotency_key_reused",
                           message: "Idempotency-Key '\(key)' was already used for a different payment (job \(existingID))")
        }
    }

    // MARK: GET /v1/payments/{id}

    func show(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let raw = context.parameters.get("id") ?? ""
        guard let id = Int64(raw), id > 0 else {
            throw APIError.badRequest("invalid_id", "payment id must be a positive integer, got '\(raw.prefix(40))'")
        }
        let token = request.headers[Self.freshnessHeader]
        if let token, token.range(of: "^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$", options: .regularExpression) == nil {
            throw APIError.badRequest("invalid_freshness_token", "X-Freshness-Token must be a WAL position such as 0/16B3748, as returned by POST")
        }
        let result = try await service.job(id: id, freshnessToken: token)
        var headers: HTTPFields = [
            Self.servedByHeader: result.source.node,
            Self.readSourceHeader: result.source.kind.rawValue,
            Self.lagHeader: String(format: "%.3f", result.source.lagSeconds ?? 0),
        ]
        if result.source.viaWritePath { headers[Self.fallbackHeader] = result.source.reason ?? "primary" }
        guard let job = result.job else {
            throw APIError(status: .notFound, code: "payment_not_found", message: "no payment with id \(id)", headers: headers)
        }
        return try Self.json(job, status: .ok, headers: headers)
    }

    // MARK: GET /v1/stats

    func stats(context: BasicRequestContext) async throws -> Response {
        struct Body: Encodable {
            var queue: QueueStats
            var worker: Worker
            var readsServedBy: [String: Int]
            var gateway: Gateway?
            struct Worker: Encodable {
                var claimed, succeeded, retried, failed, released, leaseLost, reaped, inFlight, peakInFlight, databaseErrors: Int
                var latencySecondsP50, latencySecondsP95, latencySecondsP99: Double
                enum CodingKeys: String, CodingKey {
                    case claimed, succeeded, retried, failed, released, reaped
                    case leaseLost = "lease_lost", inFlight = "in_flight", peakInFlight = "peak_in_flight", databaseErrors = "database_errors"
                    case latencySecondsP50 = "latency_seconds_p50", latencySecondsP95 = "latency_seconds_p95", latencySecondsP99 = "latency_seconds_p99"
                }
            }
            struct Gateway: Encodable {
                var calls, accepted, duplicates, declined, transientFailures: Int
                enum CodingKeys: String, CodingKey { case calls, accepted, duplicates, declined, transientFailures = "transient_failures" }
            }
            enum CodingKeys: String, CodingKey { case queue, worker, gateway, readsServedBy = "reads_served_by" }
        }
        let queue = try await QueueStats.collect(service.database, logger: context.logger)
        let t = metrics.snapshot
        let p = metrics.latencyPercentiles([50, 95, 99])
        let g = gateway?.counts
        let body = Body(
            queue: queue,
            worker: .init(claimed: t.claimed, succeeded: t.succeeded, retried: t.retried, failed: t.failed, released: t.released,
                          leaseLost: t.fencedOff, reaped: t.reaped, inFlight: t.inFlight, peakInFlight: t.peakInFlight, databaseErrors: t.databaseErrors,
                          latencySecondsP50: p[0], latencySecondsP95: p[1], latencySecondsP99: p[2]),
            readsServedBy: service.readCounts.snapshot,
            gateway: g.map { .init(calls: $0.calls, accepted: $0.accepted, duplicates: $0.duplicates, declined: $0.declined, transientFailures: $0.transientFailures) })
        return try Self.json(body)
    }

    // MARK: GET /readyz

    func ready() async -> Response {
        let database = service.database
        var problems: [String] = []
        for (name, client) in [("pgbouncer-write", database.write), ("pgbouncer-read", database.read)] {
            do {
                try await withTimeout(.seconds(2)) { _ = try await client.query("SELECT 1", logger: service.logger).collect() }
            } catch {
                problems.append("\(name): \(describe(error))")
            }
        }
        if problems.isEmpty { return Self.json(["status": "ready"]) }
        return APIError.response(status: .serviceUnavailable, code: "not_ready", message: problems.joined(separator: "; "))
    }

    // MARK: JSON

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) throws -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func json(_ value: [String: String]) -> Response {
        (try? json(value, status: .ok)) ?? Response(status: .ok)
    }
}
