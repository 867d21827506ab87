import Foundation
import Hummingbird
import Logging
import PaymentsCore
import PaymentsHTTP
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

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("/v1/charges") { request, _ in try await self.charge(request) }
        router.get("/v1/charges") { request, _ in try self.lookup(request) }
        router.post("/v1/refunds") { request, _ in try await self.refund(request) }
        router.get("/v1/stats") { _, _ in try JSONResponse.make(self.counters.snapshot(charges: self.store.chargeCount)) }
        router.get("/healthz") { _, _ in try JSONResponse.make(Health()) }
    }

    func charge(_ request: Request) async throws -> Response {
        guard let key = request.headers[.idempotencyKey], PaymentRequest.isValidIdempotencyKey(key) else {
            throw APIError.badRequest("invalid_idempotency_key", "the Idempotency-Key header is required: 1-255 printable ASCII characters without spaces")
        }
        let deadline = try Self.deadline(request.headers[.requestDeadline])
        var request = request
        let charge = try ChargeBody.parse(Data(buffer: try await request.collectBody(upTo: 16 * 1024)))
        let plan = faults.plan(key: key, attempt: charge.attempt ?? 0)
        counters.add(\.requests)

        switch store.begin(key: key) {
        case .inProgress:
            counters.add(\.inProgressConflicts)
            throw APIError(status: .conflict, code: "request_in_progress",
                           message: "another request with Idempotency-Key '\(key)' is being processed; retry later", headers: [.retryAfter: "1"])
        case let .charged(record):
            try await Self.sleep(millis: plan.delayMillis)
            guard record.matches(charge.payment) else {
                counters.add(\.keyReused)
                throw APIError(status: .conflict, code: "idempotency_key_reused",
                               message: "Idempotency-Key '\(key)' was used for a charge of \(record.amountMinor) \(record.currency)")
            }
            counters.add(\.replayed)
            return Self.response(record, status: .ok, headers: [.idempotentReplayed: "true"])
        case .started:
            break
        }
        // From here the key is in progress: every way out either commits it or leaves
        // through the catch below, which abandons it.
        do {
            try await Self.sleep(millis: plan.delayMillis)
            if plan.hang {
                counters.add(\.hangs)
                try await Self.sleep(millis: faults.hangSeconds * 1000)
            }
            if let deadline, Date() > deadline {
                counters.add(\.expired)
                throw APIError(status: .unprocessableContent, code: "request_expired",
                               message: "the request's deadline passed before it could be processed; nothing was charged")
            }
            if plan.errorBeforeCharge {
                counters.add(\.errors)
                throw APIError(status: .serviceUnavailable, code: "provider_unavailable", message: "temporarily unavailable (simulated); retry with the same key")
            }
            if plan.declined {
                counters.add(\.declined)
                throw APIError(status: .init(code: 402, reasonPhrase: "Payment Required"), code: "card_declined", message: "card declined (simulated)")
            }
        } catch {
            store.abandon(key: key)
            throw error
        }
        let (_, json) = await store.commit(key: key, payment: charge.payment, jobID: charge.jobID ?? 0)
        counters.add(\.charged)
        if plan.loseAnswer {
            counters.add(\.lostAnswers)
            // The money moved; the caller learns nothing (as when the connection drops).
            throw APIError(status: .serviceUnavailable, code: "provider_unavailable", message: "temporarily unavailable (simulated); retry with the same key")
        }
        return Self.response(json: json, status: .created)
    }

    /// A charge as the answer's body, written without Foundation (once per charge).
    static func response(_ record: ChargeRecord, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        response(json: record.json, status: status, headers: extra)
    }

    static func response(json: [UInt8], status: HTTPResponse.Status, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: json)))
    }

    /// `POST /v1/refunds` `{"idempotency_key": K, "charge_id": C}`: gives the charge's money
    /// back (idempotent): 200 and the charge marked refunded; 404 if the key holds no such
    /// charge. What an operator asks of the provider for a charge that is not its payment's.
    func refund(_ request: Request) async throws -> Response {
        var request = request
        struct Body: Decodable { var idempotency_key: String; var charge_id: String }
        guard let body = try? JSONDecoder().decode(Body.self, from: Data(buffer: try await request.collectBody(upTo: 4 * 1024))),
              PaymentRequest.isValidIdempotencyKey(body.idempotency_key), !body.charge_id.isEmpty, body.charge_id.utf8.count <= 255 else {
            throw APIError.badRequest("invalid_request", "send {\"idempotency_key\": K, \"charge_id\": C}")
        }
        guard let record = await store.refund(key: body.idempotency_key, chargeID: body.charge_id) else {
            throw APIError(status: .notFound, code: "charge_not_found",
                           message: "no charge \(body.charge_id.prefix(64)) with Idempotency-Key '\(body.idempotency_key)'")
        }
        counters.add(\.refunds)
        return Self.response(record)
    }

    static let maxPage = 10_000

    /// `GET /v1/charges?since=N&limit=M` (no `idempotency_key`): the settlement listing,
    /// every charge in the order made, `limit` (default 1,000, at most 10,000) after the
    /// first `since` (default 0): `{"charges": [...], "has_more": B, "next_since": N}`. A
    /// refund changes its charge in place, so a charge is listed once, as it is now.
    func list(_ request: Request) throws -> Response {
        let parameters = request.uri.queryParameters
        func count(_ name: String, default value: Int, in range: ClosedRange<Int>) throws -> Int {
            guard let text = parameters.get(name) else { return value }
            guard let n = Int(text), range.contains(n) else {
                throw APIError.badRequest("invalid_\(name)", "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
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
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    func lookup(_ request: Request) throws -> Response {
        if request.uri.queryParameters.get("idempotency_key") == nil { return try list(request) }
        guard let key = request.uri.queryParameters.get("idempotency_key"), PaymentRequest.isValidIdempotencyKey(key) else {
            throw APIError.badRequest("invalid_idempotency_key", "give ?idempotency_key=K (1-255 printable ASCII characters without spaces)")
        }
        counters.add(\.lookups)
        switch store.lookup(key: key) {
        case let .charged(record):
            return Self.response(record)
        case .inProgress:
            throw APIError(status: .conflict, code: "request_in_progress",
                           message: "a request with Idempotency-Key '\(key)' is being processed; ask again later", headers: [.retryAfter: "1"])
        case .unknown:
            throw APIError(status: .notFound, code: "charge_not_found", message: "no charge with Idempotency-Key '\(key)'")
        }
    }

    static func deadline(_ header: String?) throws -> Date? {
        guard let header else { return nil }
        guard let millis = Int64(header), millis > 0 else {
            throw APIError.badRequest("invalid_request_deadline", "Request-Deadline must be a Unix time in milliseconds")
        }
        return Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    static func sleep(millis: Double) async throws {
        guard millis > 0 else { return }
        try await Task.sleep(for: .microseconds(Int64(millis * 1000)))
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
            case .malformed: throw APIError.badRequest("invalid_json", "the body is not valid JSON")
            case .duplicateField: throw APIError.badRequest("duplicate_field", error.description)
            }
        }
        guard case let .object(object) = json else { throw APIError.badRequest("invalid_request", "the body must be a JSON object") }
        if let unknown = object.keys.sorted().first(where: { !fields.contains($0) }) {
            throw APIError.badRequest("unknown_field", "unknown field '\(unknown.prefix(64))'")
        }
        guard case let .integer(amount) = object["amount_minor"], amount > 0, amount <= PaymentRequest.maxAmountMinor else {
            throw APIError.badRequest("invalid_amount", "amount_minor must be a positive integer up to \(PaymentRequest.maxAmountMinor)")
        }
        guard case let .string(currency) = object["currency"], currency.utf8.count == 3, currency.utf8.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) else {
            throw APIError.badRequest("invalid_currency", "currency must be three upper-case letters")
        }
        guard case let .string(debtor) = object["debtor"], PaymentRequest.isValidAccount(debtor),
              case let .string(creditor) = object["creditor"], PaymentRequest.isValidAccount(creditor) else {
            throw APIError.badRequest("invalid_account", "debtor and creditor must be account ids of 1-64 characters [A-Za-z0-9_.:-]")
        }
        var jobID: Int64?
        if let value = object["job_id"] {
            guard case let .integer(id) = value, id >= 0 else { throw APIError.badRequest("invalid_job_id", "job_id must be a non-negative integer") }
            jobID = id
        }
        var attempt: Int64?
        if let value = object["attempt"] {
            guard case let .integer(n) = value, n >= 0 else { throw APIError.badRequest("invalid_attempt", "attempt must be a non-negative integer") }
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

extension HTTPFields.Element.Name {
    public static let requestDeadline = Self("Request-Deadline")!
    public static let idempotentReplayed = Self("Idempotent-Replayed")!
}
