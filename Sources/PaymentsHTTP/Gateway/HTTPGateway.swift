import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import PaymentsCore
import ServiceLifecycle

/// The worker's side of `payments gateway` (or any provider speaking its API): charges
/// and lookups over HTTP through AsyncHTTPClient, each bounded by a deadline that is also
/// sent to the provider (`Request-Deadline`), so a request that arrives too late is
/// refused there rather than charged after the worker gave up on it.
///
/// Anything but a clear answer (201/200 charged, 402 declined, 409 key used for another
/// payment) is a transient failure: the charge may or may not have happened, and the
/// worker retries with the same key or asks later.
public final class HTTPGateway: PaymentGateway, ChargeListing, Service {
    public enum LookupError: Error, CustomStringConvertible, Sendable {
        /// A request for the key is being processed: its outcome is not known yet.
        case inProgress(key: String)
        case unexpected(status: UInt, body: String)
        public var description: String {
            switch self {
            case let .inProgress(key): "a charge for key '\(key)' is still being processed by the gateway"
            case let .unexpected(status, body): "the gateway answered \(status): \(body.prefix(200))"
            }
        }
    }

    public let baseURL: String
    let client: HTTPClient
    /// The charges' own client for a plain-HTTP provider (nil for https: AsyncHTTPClient).
    let charges: ChargeConnections?
    let timeout: Duration
    let logger: Logger

    /// The charges in flight up to which each has a connection of its own (ChargeConnections).
    public static let defaultPipelineAbove = 64

    /// - Parameters:
    ///   - timeout: the longest a lookup, or a charge that carries no deadline of its
    ///     own, may take.
    ///   - connections: concurrent HTTP/1.1 connections to the gateway.
    ///   - pipeline: charges a connection takes before the next is used under load
    ///     (ChargeConnections; the serve's default is `ServerSettings.defaultGatewayPipeline`,
    ///     the one-off commands' 1).
    ///   - pipelineAbove: the charges in flight beyond which they share connections.
    public init(baseURL: String, timeout: Duration, connections: Int = 256, pipeline: Int = 1,
                pipelineAbove: Int = HTTPGateway.defaultPipelineAbove, logger: Logger) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.timeout = timeout
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        // The deadline of a call bounds it until the answer's head; the read timeout bounds
        // a body that stalls after it.
        configuration.timeout = .init(connect: .seconds(2), read: .nanoseconds(Int64(timeout.seconds * 1e9)))
        // Per call, the client's tracing span, redirect bookkeeping and request logger cost
        // CPU the charge path does not spend (perf, 2026-12-04): none of them is used.
        configuration.tracing.tracer = nil
        configuration.redirectConfiguration = .disallow
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.charges = ChargeConnections.Endpoint(baseURL: self.baseURL).map { ChargeConnections(endpoint: $0, capacity: connections, pipeline: pipeline, pipelineAbove: pipelineAbove) }
    }

    /// Keeps the client until the service group shuts down (after the worker pool, which
    /// is listed after it), then closes its connections.
    public func run() async throws {
        try? await gracefulShutdown()
        try await shutdown()
    }

    /// Closes the client's connections (`run` does it when the service group stops).
    public func shutdown() async throws {
        await charges?.shutdown()
        try await client.shutdown()
    }

    public func charge(_ request: ChargeRequest) async -> ChargeOutcome {
        // The worker sets the deadline (its timeout or its lease, whichever is first); a
        // caller without one gets this client's timeout.
        let deadline = request.deadline ?? Date() + timeout.seconds
        let remaining = deadline.timeIntervalSinceNow
        guard remaining > 0 else { return .transientFailure(reason: "the charge's deadline passed before it was sent; not sent") }
        let deadlineMillis = Int64((deadline.timeIntervalSince1970 * 1000).rounded(.down))
        let body = ByteBuffer(bytes: FlatJSON.encode([
            "amount_minor": .integer(request.payment.amountMinor), "attempt": .integer(Int64(request.attempt)),
            "creditor": .string(request.payment.creditor), "currency": .string(request.payment.currency),
            "debtor": .string(request.payment.debtor), "job_id": .integer(request.jobID),
        ]))
        if let charges {
            // Keys are checked at intake; a header must never carry a line break either way.
            guard PaymentRequest.isValidIdempotencyKey(request.idempotencyKey) else {
                return .transientFailure(reason: "the idempotency key is not a valid header value; not sent")
            }
            switch await charges.send(key: request.idempotencyKey, deadlineMillis: deadlineMillis, body: body,
                                      deadline: .now() + .nanoseconds(Int64(remaining * 1e9))) {
            case let .response(status, text): return Self.outcome(status: status, body: text)
            case .timedOut: return .transientFailure(reason: Self.noAnswer(within: remaining))
            case let .notSent(reason): return .transientFailure(reason: "\(reason); not sent")
            case let .lost(reason): return .transientFailure(reason: reason)
            case .cancelled: return .abandoned
            }
        }
        return await chargeThroughAsyncHTTPClient(key: request.idempotencyKey, deadlineMillis: deadlineMillis, body: body,
                                                  remaining: remaining)
    }

    // Its own frame: the locals of AsyncHTTPClient's call are not held by every call in
    // flight through ChargeConnections.
    @inline(never)
    private func chargeThroughAsyncHTTPClient(key: String, deadlineMillis: Int64, body: ByteBuffer, remaining: Double) async -> ChargeOutcome {
        var http = HTTPClientRequest(url: "\(baseURL)/v1/charges")
        http.method = .POST
        http.headers.add(name: "Idempotency-Key", value: key)
        http.headers.add(name: "Request-Deadline", value: String(deadlineMillis))
        http.headers.add(name: "Content-Type", value: "application/json")
        http.body = .bytes(body)
        do {
            // No request logger: the outcome is logged by the worker, with the job's metadata.
            let response = try await client.execute(http, deadline: .now() + .nanoseconds(Int64(remaining * 1e9)))
            return Self.outcome(status: response.status.code, body: try await response.body.collect(upTo: 64 * 1024))
        } catch is CancellationError {
            return .abandoned
        } catch let error as HTTPClientError where error == .deadlineExceeded {
            return .transientFailure(reason: Self.noAnswer(within: remaining))
        } catch {
            if Task.isCancelled { return .abandoned }
            return .transientFailure(reason: "gateway call failed: \(describe(error))")
        }
    }

    /// A call that got no answer by its deadline, `remaining` seconds after it was sent.
    static func noAnswer(within remaining: Double) -> String {
        "no answer from the gateway within \(String(format: "%.3f", remaining)) s; outcome unknown"
    }

    /// What a charge's answer means; anything but a clear one is a transient failure.
    static func outcome(status: UInt, body text: ByteBuffer) -> ChargeOutcome {
        switch status {
        case 200, 201:
            // Matched to the payment by the worker before anything is posted.
            guard let record = ChargeRecord.decode(text.readableBytesView) else {
                return .transientFailure(reason: "gateway answered \(status) with a body that is not a charge; outcome unknown")
            }
            return .accepted(record)
        case 402:
            return .declined(code: Self.code(text), reason: Self.message(text) ?? "card declined")
        case 409 where Self.code(text) == "idempotency_key_reused":
            // Money moved under this key, for another amount or currency: reconciled, never failed.
            return .keyHeldByAnotherCharge(reason: "gateway: \(Self.message(text) ?? "the key was used for another charge")")
        case 409 where Self.code(text) == "request_in_progress":
            return .inProgress(reason: "gateway: another request with this key is being processed")
        default:
            return .transientFailure(reason: "gateway answered \(status) \(Self.code(text) ?? "")")
        }
    }

    public func lookup(idempotencyKey: String) async throws -> ChargeRecord? {
        var components = URLComponents(string: "\(baseURL)/v1/charges")!
        components.queryItems = [URLQueryItem(name: "idempotency_key", value: idempotencyKey)]
        // URLComponents leaves '+' alone, which a server reads as a space.
        let query = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B") ?? ""
        let request = HTTPClientRequest(url: "\(baseURL)/v1/charges?\(query)")
        let response = try await client.execute(request, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)), logger: logger)
        let text = try await response.body.collect(upTo: 64 * 1024)
        switch response.status.code {
        case 200:
            guard let record = ChargeRecord.decode(text.readableBytesView) else {
                throw LookupError.unexpected(status: 200, body: String(buffer: text))
            }
            return record
        // Only the gateway's own "no such charge" means not charged: a 404 from a wrong
        // URL or a proxy must not let the reconciler fail a charged payment.
        case 404 where Self.code(text) == "charge_not_found": return nil
        case 409: throw LookupError.inProgress(key: idempotencyKey)
        default: throw LookupError.unexpected(status: response.status.code, body: String(buffer: text))
        }
    }

    /// One page of the provider's settlement listing (`GET /v1/charges?since=&limit=`).
    public func charges(since: Int, limit: Int) async throws -> ChargePage {
        let request = HTTPClientRequest(url: "\(baseURL)/v1/charges?since=\(since)&limit=\(limit)")
        let response = try await client.execute(request, timeout: .nanoseconds(Int64(max(timeout.seconds, 30) * 1e9)), logger: logger)
        let text = try await response.body.collect(upTo: 64 * 1024 * 1024)
        guard response.status.code == 200, let page = try? JSONDecoder().decode(ChargePage.self, from: text) else {
            throw LookupError.unexpected(status: response.status.code, body: String(String(buffer: text).prefix(300)))
        }
        return page
    }

    /// Asks the provider to refund `chargeID` of `key` (an operator's way out of a charge
    /// that is not its payment's); returns the refunded record.
    public func refund(idempotencyKey: String, chargeID: String) async throws -> ChargeRecord {
        var request = HTTPClientRequest(url: "\(baseURL)/v1/refunds")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: FlatJSON.encode(["charge_id": .string(chargeID), "idempotency_key": .string(idempotencyKey)])))
        let response = try await client.execute(request, timeout: .nanoseconds(Int64(timeout.seconds * 1e9)), logger: logger)
        let text = try await response.body.collect(upTo: 64 * 1024)
        guard response.status.code == 200, let record = ChargeRecord.decode(text.readableBytesView), record.isRefunded else {
            throw LookupError.unexpected(status: response.status.code, body: String(buffer: text))
        }
        return record
    }

    static func code(_ body: ByteBuffer) -> String? { errorField(body, "code") }
    static func message(_ body: ByteBuffer) -> String? { errorField(body, "message") }

    private static func errorField(_ body: ByteBuffer, _ field: String) -> String? {
        struct Envelope: Decodable { var error: [String: String] }
        return (try? JSONDecoder().decode(Envelope.self, from: body))?.error[field]
    }
}
