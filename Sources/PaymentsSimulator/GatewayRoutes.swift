import Foundation
import NIOCore
import PaymentsCore
import Synchronization

/// The simulated payment service provider's API (`payments gateway`), Stripe-like:
///
/// - `POST /v1/charges` with `Idempotency-Key`: 201 and the charge; 200 with
///   `Idempotent-Replayed: true` for a key already charged with the same amount and
///   currency; 409 `idempotency_key_reused` for another amount or currency; 409
///   `request_in_progress` while another request for the key is processed; 402
///   `card_declined`; 422 `request_expired` when the request arrives (or would be
///   processed) after its `Request-Deadline`; 503 for injected errors and lost answers.
/// - `GET /v1/charges?idempotency_key=K`: 200 and the charge, 404 if none, 409 while a
///   request for the key is in progress.
/// - `GET /v1/charges?since=N&limit=M`: the settlement listing, paged (see `list`).
/// - `GET /healthz`, `GET /v1/stats`.
///
/// `Request-Deadline` (Unix time in milliseconds) is how a caller bounds when its charge
/// may still happen: past it the gateway refuses to charge, so once every deadline of a
/// key has passed and no request for it is in progress, "no charge" is final.
struct GatewayRoutes: Sendable {
    let store: ChargeStore
    let faults: GatewayFaults
    let counters: GatewayCounters

    init(store: ChargeStore, faults: GatewayFaults, counters: GatewayCounters) {
        self.store = store
        self.faults = faults
        self.counters = counters
    }

    typealias Done = @Sendable (GatewayAnswer) -> Void

    /// Answers `request` through `done`, exactly once: at once, from a timer on `loop`
    /// (a simulated latency), or from the journal's thread (a charge's fsync).
    func respond(to request: GatewayRequest, on loop: any EventLoop, _ done: @escaping Done) {
        let method = request.method == .HEAD ? .GET : request.method
        do {
            switch (method, request.path) {
            case (.POST, "/v1/charges"): try charge(request, on: loop, done)
            case (.GET, "/v1/charges"): done(try lookup(request))
            case (.POST, "/v1/refunds"): try refund(request, done)
            case (.GET, "/v1/stats"): done(.encoded(counters.snapshot(charges: store.chargeCount)))
            // Alive, and this process's clock (Unix ms): `payments status` and the dashboard
            // compare it with the others'.
            case (.GET, "/healthz"): done(.json(Array(#"{"status":"ok","time_ms":\#(Int64((Date().timeIntervalSince1970 * 1000).rounded()))}"#.utf8)))
            case (_, "/v1/charges"), (_, "/v1/refunds"), (_, "/v1/stats"), (_, "/healthz"):
                throw GatewayError(.methodNotAllowed, "method_not_allowed", "\(request.method) is not allowed on \(request.path.prefix(64))")
            default:
                throw GatewayError(.notFound, "not_found", "no route \(request.method) \(request.path.prefix(64))")
            }
        } catch let error as GatewayError {
            done(error.answer)
        } catch {
            done(GatewayError(.internalServerError, "internal_error", "internal error").answer)
        }
    }

    func charge(_ request: GatewayRequest, on loop: any EventLoop, _ done: @escaping Done) throws {
        guard let key = request.header(GatewayRequest.idempotencyKey), PaymentRequest.isValidIdempotencyKey(key) else {
            throw GatewayError.badRequest("invalid_idempotency_key", "the Idempotency-Key header is required: 1-255 printable ASCII characters without spaces")
        }
        let deadline = try Self.deadline(request.header(GatewayRequest.requestDeadline))
        let charge = try ChargeBody.parse(Data(buffer: request.body))
        let plan = faults.plan(key: key, attempt: charge.attempt ?? 0)
        counters.add(\.requests)

        switch store.begin(key: key) {
        case .inProgress:
            counters.add(\.inProgressConflicts)
            throw GatewayError(.conflict, "request_in_progress",
                               "another request with Idempotency-Key '\(key)' is being processed; retry later", retryAfter: 1)
        case let .charged(record):
            Self.after(millis: plan.delayMillis, on: loop) { [counters] in
                guard record.matches(charge.payment) else {
                    counters.add(\.keyReused)
                    return done(GatewayError(.conflict, "idempotency_key_reused",
                                             "Idempotency-Key '\(key)' was used for a charge of \(record.amountMinor) \(record.currency)").answer)
                }
                counters.add(\.replayed)
                done(.json(record.json, headers: [(GatewayRequest.idempotentReplayed, "true")]))
            }
        case .started:
            // From here the key is in progress: every way out either commits it or abandons it.
            Self.after(millis: plan.delayMillis, on: loop) {
                if plan.hang { counters.add(\.hangs) }
                Self.after(millis: plan.hang ? faults.hangSeconds * 1000 : 0, on: loop) {
                    decide(key: key, charge: charge, plan: plan, deadline: deadline, done)
                }
            }
        }
    }

    /// The charge's verdict once its (simulated) processing time has passed.
    private func decide(key: String, charge: ChargeBody, plan: GatewayFaults.Plan, deadline: Date?, _ done: @escaping Done) {
        let refusal: GatewayError?
        if let deadline, Date() > deadline {
            counters.add(\.expired)
            refusal = GatewayError(.unprocessableEntity, "request_expired", "the request's deadline passed before it could be processed; nothing was charged")
        } else if plan.errorBeforeCharge {
            counters.add(\.errors)
            refusal = .unavailable
        } else if plan.declined {
            counters.add(\.declined)
            refusal = GatewayError(.paymentRequired, "card_declined", "card declined (simulated)")
        } else {
            refusal = nil
        }
        if let refusal {
            store.abandon(key: key)
            return done(refusal.answer)
        }
        store.commit(key: key, payment: charge.payment, jobID: charge.jobID ?? 0) { [counters] _, json in
            counters.add(\.charged)
            if plan.loseAnswer {
                counters.add(\.lostAnswers)
                // The money moved; the caller learns nothing (as when the connection drops).
                return done(GatewayError.unavailable.answer)
            }
            done(.json(json, status: .created))
        }
    }

    /// Runs `body` after `millis` on `loop`'s timer, or now when there is nothing to wait.
    static func after(millis: Double, on loop: any EventLoop, _ body: @escaping @Sendable () -> Void) {
        guard millis > 0 else { return body() }
        loop.scheduleTask(in: .microseconds(Int64(millis * 1000))) { body() }
    }

    /// `POST /v1/refunds` `{"idempotency_key": K, "charge_id": C}`: gives the charge's money
    /// back (idempotent): 200 and the charge marked refunded; 404 if the key holds no such
    /// charge. What an operator asks of the provider for a charge that is not its payment's.
    func refund(_ request: GatewayRequest, _ done: @escaping Done) throws {
        struct Body: Decodable { var idempotency_key: String; var charge_id: String }
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(buffer: request.body)),
              PaymentRequest.isValidIdempotencyKey(body.idempotency_key), !body.charge_id.isEmpty, body.charge_id.utf8.count <= 255 else {
            throw GatewayError.badRequest("invalid_request", "send {\"idempotency_key\": K, \"charge_id\": C}")
        }
        store.refund(key: body.idempotency_key, chargeID: body.charge_id) { [counters] record in
            guard let record else {
                return done(GatewayError(.notFound, "charge_not_found",
                                         "no charge \(body.charge_id.prefix(64)) with Idempotency-Key '\(body.idempotency_key)'").answer)
            }
            counters.add(\.refunds)
            done(.json(record.json))
        }
    }

    static let maxPage = 10_000

    /// `GET /v1/charges?since=N&limit=M` (no `idempotency_key`): the settlement listing,
    /// every charge in the order made, `limit` (default 1,000, at most 10,000) after the
    /// first `since` (default 0): `{"charges": [...], "has_more": B, "next_since": N}`. A
    /// refund changes its charge in place, so a charge is listed once, as it is now.
    func list(_ request: GatewayRequest) throws -> GatewayAnswer {
        func count(_ name: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
            guard let text = try request.queryParameter(name) else { return value }
            guard let n = Int(text), range.contains(n) else {
                throw GatewayError.badRequest("invalid_\(name)", "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return n
        }
        let since = try count("since", default: 0, in: 0...Int(Int32.max))
        let limit = try count("limit", default: 1_000, in: 1...Self.maxPage)
        counters.add(\.listings)
        let page = store.page(since: since, limit: limit)
        var body: [UInt8] = Array(#"{"charges":["#.utf8)
        for (index, record) in page.records.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: record.json)
        }
        body.append(contentsOf: #"],"has_more":\#(page.hasMore),"next_since":\#(page.next)}"#.utf8)
        return .json(body)
    }

    func lookup(_ request: GatewayRequest) throws -> GatewayAnswer {
        guard let key = try request.queryParameter("idempotency_key") else { return try list(request) }
        guard PaymentRequest.isValidIdempotencyKey(key) else {
            throw GatewayError.badRequest("invalid_idempotency_key", "give ?idempotency_key=K (1-255 printable ASCII characters without spaces)")
        }
        counters.add(\.lookups)
        switch store.lookup(key: key) {
        case let .charged(record):
            return .json(record.json)
        case .inProgress:
            throw GatewayError(.conflict, "request_in_progress",
                               "a request with Idempotency-Key '\(key)' is being processed; ask again later", retryAfter: 1)
        case .unknown:
            throw GatewayError(.notFound, "charge_not_found", "no charge with Idempotency-Key '\(key)'")
        }
    }

    static func deadline(_ header: String?) throws -> Date? {
        guard let header else { return nil }
        guard let millis = Int64(header), millis > 0 else {
            throw GatewayError.badRequest("invalid_request_deadline", "Request-Deadline must be a Unix time in milliseconds")
        }
        return Date(timeIntervalSince1970: Double(millis) / 1000)
    }
}

/// The body of `POST /v1/charges`: the payment, and the job it is for (for the records).
struct ChargeBody: Sendable, Equatable {
    static let fields: Set<String> = ["amount_minor", "currency", "debtor", "creditor", "job_id", "attempt"]

    var payment: Payment
    var jobID: Int64?
    /// The caller's attempt number: with the key, what the fault draws are a function of.
    var attempt: Int64?

    static func parse(_ data: Data) throws -> ChargeBody {
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch {
            switch error {
            case .malformed: throw GatewayError.badRequest("invalid_json", "the body is not valid JSON")
            case .duplicateField: throw GatewayError.badRequest("duplicate_field", error.description)
            }
        }
        guard case let .object(object) = json else { throw GatewayError.badRequest("invalid_request", "the body must be a JSON object") }
        if let unknown = object.keys.sorted().first(where: { !fields.contains($0) }) {
            throw GatewayError.badRequest("unknown_field", "unknown field '\(unknown.prefix(64))'")
        }
        guard case let .integer(amount) = object["amount_minor"], amount > 0, amount <= PaymentRequest.maxAmountMinor else {
            throw GatewayError.badRequest("invalid_amount", "amount_minor must be a positive integer up to \(PaymentRequest.maxAmountMinor)")
        }
        guard case let .string(currency) = object["currency"], currency.utf8.count == 3, currency.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            throw GatewayError.badRequest("invalid_currency", "currency must be three upper-case letters")
        }
        guard case let .string(debtor) = object["debtor"], PaymentRequest.isValidAccount(debtor),
              case let .string(creditor) = object["creditor"], PaymentRequest.isValidAccount(creditor) else {
            throw GatewayError.badRequest("invalid_account", "debtor and creditor must be account ids of 1-64 characters [A-Za-z0-9_.:-]")
        }
        var jobID: Int64?
        if let value = object["job_id"] {
            guard case let .integer(id) = value, id >= 0 else { throw GatewayError.badRequest("invalid_job_id", "job_id must be a non-negative integer") }
            jobID = id
        }
        var attempt: Int64?
        if let value = object["attempt"] {
            guard case let .integer(n) = value, n >= 0 else { throw GatewayError.badRequest("invalid_attempt", "attempt must be a non-negative integer") }
            attempt = n
        }
        return ChargeBody(payment: Payment(amountMinor: amount, currency: currency, debtor: debtor, creditor: creditor), jobID: jobID, attempt: attempt)
    }
}

/// What the gateway did since it started, for `GET /v1/stats` and its log.
final class GatewayCounters: Sendable {
    struct Counts: Sendable, Encodable {
        var requests = 0, charged = 0, replayed = 0, declined = 0, errors = 0, lostAnswers = 0
        var hangs = 0, expired = 0, inProgressConflicts = 0, keyReused = 0, lookups = 0, refunds = 0
        var listings = 0, charges = 0

        enum CodingKeys: String, CodingKey {
            case requests, charged, replayed, declined, errors, hangs, expired, lookups, listings, charges, refunds
            case lostAnswers = "lost_answers", inProgressConflicts = "in_progress_conflicts", keyReused = "key_reused"
        }
    }

    private let counts = Mutex(Counts())

    func add(_ field: WritableKeyPath<Counts, Int>) { counts.withLock { $0[keyPath: field] += 1 } }

    func snapshot(charges: Int) -> Counts {
        var c = counts.withLock { $0 }
        c.charges = charges
        return c
    }
}
