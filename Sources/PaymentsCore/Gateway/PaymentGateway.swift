import Foundation

/// What the worker asks of a payment gateway. Real gateways deduplicate by idempotency
/// key: charging the same key twice returns the first result and moves money once.
public protocol PaymentGateway: Sendable {
    /// Answers by `request.deadline`: past it, `.transientFailure` (no answer in time; the
    /// outcome is unknown to the caller, who retries with the same key). The worker sets no
    /// timer of its own around a call: at 100,000 in flight, a timer task racing each call
    /// was a third of the heap.
    func charge(_ request: ChargeRequest) async -> ChargeOutcome
    /// The gateway's record for a key, if it ever accepted a charge for it: how a worker
    /// settles a job whose outcome it never saw (lost response, exhausted retries).
    func lookup(idempotencyKey: String) async throws -> ChargeRecord?
    /// What the gateway counted of its own calls, for `/v1/stats`: a gateway in this
    /// process (the simulated one of benchmarks) knows; a remote provider's client does
    /// not (nil, the default).
    var counts: GatewayCounts? { get }
}

extension PaymentGateway {
    public var counts: GatewayCounts? { nil }
}

/// A gateway's calls by what came of them.
public struct GatewayCounts: Sendable, Equatable {
    public var calls = 0
    public var accepted = 0
    public var duplicates = 0
    public var declined = 0
    public var transientFailures = 0

    public init() {}
}

/// One call to the gateway: the payment, under the key that makes retries safe.
public struct ChargeRequest: Sendable, Equatable {
    public var idempotencyKey: String
    public var payment: Payment
    /// For the gateway's records and logs only; the key is what deduplicates.
    public var jobID: Int64
    public var attempt: Int32
    /// After this instant the charge must not happen any more: the gateway refuses a
    /// request that reaches it later. The worker sets it to its gateway timeout or its
    /// lease's end, whichever is first, so once a job's lease has expired no charge of
    /// that attempt can still land, and a reconciler that finds no charge for the key
    /// can trust the answer.
    public var deadline: Date?

    public init(idempotencyKey: String, payment: Payment, jobID: Int64, attempt: Int32, deadline: Date? = nil) {
        self.idempotencyKey = idempotencyKey
        self.payment = payment
        self.jobID = jobID
        self.attempt = attempt
        self.deadline = deadline
    }
}

/// What the gateway remembers of an accepted charge.
public struct ChargeRecord: Sendable, Equatable, Codable {
    public var key: String
    public var chargeID: String
    public var jobID: Int64
    public var amountMinor: Int64
    public var currency: String
    /// The provider gave the money back (an operator's way out of a charge that is not its
    /// payment's): no longer a charge any payment may be posted for.
    public var refunded: Bool?
    /// What the charge was for beyond its amount: the accounts (nil in records written
    /// before the provider kept them). With them a lost payment can be re-created from the
    /// provider's record (`payments reconcile --adopt`).
    public var debtor: String?
    public var creditor: String?
    /// When the provider made the charge, Unix time in milliseconds (nil in older records).
    public var createdMillis: Int64?

    public init(key: String, chargeID: String, jobID: Int64, amountMinor: Int64, currency: String, refunded: Bool? = nil,
                debtor: String? = nil, creditor: String? = nil, createdMillis: Int64? = nil) {
        self.debtor = debtor
        self.creditor = creditor
        self.createdMillis = createdMillis
        self.key = key
        self.chargeID = chargeID
        self.jobID = jobID
        self.amountMinor = amountMinor
        self.currency = currency
        self.refunded = refunded
    }

    public var isRefunded: Bool { refunded == true }

    /// Whether this charge is for `payment`'s amount and currency.
    public func matches(_ payment: Payment) -> Bool {
        amountMinor == payment.amountMinor && currency == payment.currency
    }

    /// Whether this record is the charge of `key` for `payment`: what every answer is
    /// checked against before a payment is posted, whoever sent it.
    public func isCharge(of key: String, for payment: Payment) -> Bool {
        self.key == key && matches(payment) && !chargeID.isEmpty && !isRefunded
    }

    enum CodingKeys: String, CodingKey {
        case key, chargeID = "charge_id", jobID = "job_id", amountMinor = "amount_minor", currency, refunded
        case debtor, creditor, createdMillis = "created_ms"
    }

    /// The payment this charge was for, when the record names its accounts.
    public var payment: Payment? {
        guard let debtor, let creditor else { return nil }
        return Payment(amountMinor: amountMinor, currency: currency, debtor: debtor, creditor: creditor)
    }

    /// The record as JSON, keys sorted (as JSONEncoder with .sortedKeys writes it): the
    /// gateway's answer and its journal line, written once per charge.
    public var json: [UInt8] {
        FlatJSON.encode([
            "amount_minor": .integer(amountMinor), "charge_id": .string(chargeID), "created_ms": createdMillis.map(FlatJSON.Value.integer),
            "creditor": creditor.map(FlatJSON.Value.string), "currency": .string(currency), "debtor": debtor.map(FlatJSON.Value.string),
            "job_id": .integer(jobID), "key": .string(key), "refunded": refunded.map(FlatJSON.Value.bool),
        ])
    }

    /// Reads a record from the gateway's JSON: a flat object read without Foundation, else
    /// (a provider that adds nested fields) through the Codable path. Nil if it is not one.
    public static func decode(_ bytes: some Collection<UInt8>) -> ChargeRecord? {
        if let object = FlatJSON.object(bytes) { return ChargeRecord(object) }
        return try? JSONDecoder().decode(ChargeRecord.self, from: Data(bytes))
    }

    init?(_ object: [String: JSONValue]) {
        guard case let .string(key)? = object["key"], case let .string(chargeID)? = object["charge_id"],
              case let .integer(jobID)? = object["job_id"], case let .integer(amount)? = object["amount_minor"],
              case let .string(currency)? = object["currency"] else { return nil }
        var refunded: Bool?
        switch object["refunded"] {
        case nil, .null?: refunded = nil
        case let .bool(b)?: refunded = b
        default: return nil
        }
        func optionalString(_ field: String) -> String?? {
            switch object[field] {
            case nil, .null?: .some(nil)
            case let .string(s)?: .some(s)
            default: nil
            }
        }
        guard let debtor = optionalString("debtor"), let creditor = optionalString("creditor") else { return nil }
        var created: Int64?
        switch object["created_ms"] {
        case nil, .null?: created = nil
        case let .integer(n)?: created = n
        default: return nil
        }
        self.init(key: key, chargeID: chargeID, jobID: jobID, amountMinor: amount, currency: currency, refunded: refunded,
                  debtor: debtor, creditor: creditor, createdMillis: created)
    }
}

public enum ChargeOutcome: Sendable, Equatable {
    /// The gateway says money moved (now, or on an earlier call with the same key), and
    /// this is its record: matched to the payment before anything is posted.
    case accepted(ChargeRecord)
    /// A permanent refusal the payer can act on (insufficient funds, blocked account): never
    /// retried. `code` is the provider's decline code.
    case declined(code: String?, reason: String)
    /// The gateway holds a charge under this key for another amount or currency (409
    /// `idempotency_key_reused`): money moved under the key, so the payment is reconciled,
    /// never failed.
    case keyHeldByAnotherCharge(reason: String)
    /// Another request with this key is being processed (409 `request_in_progress`): its
    /// outcome is not known until its deadline has passed. Not an attempt of ours.
    case inProgress(reason: String)
    /// Timeout, 5xx, connection reset: the charge may or may not have happened.
    case transientFailure(reason: String)
    /// The call was abandoned (shutdown): outcome unknown, the job goes back to the queue.
    case abandoned
}

/// One page of a provider's settlement listing: its charges in the order made.
public struct ChargePage: Sendable, Equatable, Decodable {
    public var charges: [ChargeRecord]
    public var hasMore: Bool
    /// The `since` of the next page.
    public var nextSince: Int

    public init(charges: [ChargeRecord], hasMore: Bool, nextSince: Int) {
        self.charges = charges
        self.hasMore = hasMore
        self.nextSince = nextSince
    }

    enum CodingKeys: String, CodingKey {
        case charges, hasMore = "has_more", nextSince = "next_since"
    }
}

/// A provider that lists every charge it holds (what daily settlement compares against).
public protocol ChargeListing: Sendable {
    func charges(since: Int, limit: Int) async throws -> ChargePage
}
