import Foundation

/// What the worker asks of a payment gateway. Real gateways deduplicate by idempotency
/// key: charging the same key twice returns the first result and moves money once.
public protocol PaymentGateway: Sendable {
    func charge(_ request: ChargeRequest) async -> ChargeOutcome
    /// The gateway's record for a key, if it ever accepted a charge for it: how a worker
    /// settles a job whose outcome it never saw (lost response, exhausted retries).
    func lookup(idempotencyKey: String) async throws -> ChargeRecord?
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

    public init(key: String, chargeID: String, jobID: Int64, amountMinor: Int64, currency: String) {
        self.key = key
        self.chargeID = chargeID
        self.jobID = jobID
        self.amountMinor = amountMinor
        self.currency = currency
    }

    /// Whether this charge is for `payment`'s amount and currency.
    public func matches(_ payment: Payment) -> Bool {
        amountMinor == payment.amountMinor && currency == payment.currency
    }

    enum CodingKeys: String, CodingKey {
        case key, chargeID = "charge_id", jobID = "job_id", amountMinor = "amount_minor", currency
    }
}

public enum ChargeOutcome: Sendable, Equatable {
    /// Money moved (now, or on an earlier call with the same key).
    case accepted(chargeID: String)
    /// A permanent refusal (insufficient funds, blocked account): never retried.
    case declined(reason: String)
    /// Timeout, 5xx, connection reset: the charge may or may not have happened.
    case transientFailure(reason: String)
    /// The call was abandoned (shutdown): outcome unknown, the job goes back to the queue.
    case abandoned
}
