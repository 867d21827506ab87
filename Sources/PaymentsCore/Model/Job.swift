/// A payment job as the API shows it: the payment, how it is scheduled, where it is in
/// its life, and (once read back) its ledger postings.
public struct Job: Sendable, Equatable {
    public struct Posting: Sendable, Equatable, Codable {
        public var side: String
        public var account: String
        public var amountMinor: Int64
        public var currency: String
        public var postedAt: String

        public init(side: String, account: String, amountMinor: Int64, currency: String, postedAt: String) {
            self.side = side
            self.account = account
            self.amountMinor = amountMinor
            self.currency = currency
            self.postedAt = postedAt
        }

        enum CodingKeys: String, CodingKey {
            case side, account, currency
            case amountMinor = "amount_minor", postedAt = "posted_at"
        }
    }

    public var id: Int64
    public var idempotencyKey: String
    public var payment: Payment
    public var priority: Int16
    public var maxAttempts: Int32
    public var state: JobState
    public var attempt: Int32
    public var lastError: String?
    public var chargeID: String?
    /// ISO 8601 UTC with microseconds, as PostgreSQL stored them.
    public var createdAt: String
    public var updatedAt: String
    public var finishedAt: String?
    /// The end of the retry budget, when the payment carries its own (else the serving
    /// process's `--give-up-after` from its creation).
    public var giveUpAt: String?
    /// Why a `failed` payment failed (nil for other states, and for payments failed before
    /// failure reasons were recorded: their `lastError` says why).
    public var failureReason: FailureReason?
    /// When a cancel was asked for a payment whose request may have reached the gateway.
    public var cancelRequestedAt: String?
    /// Why a `reconciling` payment waits for an operator.
    public var heldReason: HeldReason?
    /// Nil when not read (a create answer), else the debit and credit if posted.
    public var postings: [Posting]?

    public init(id: Int64, idempotencyKey: String, payment: Payment, priority: Int16, maxAttempts: Int32, state: JobState,
                attempt: Int32, lastError: String? = nil, chargeID: String? = nil, createdAt: String, updatedAt: String,
                finishedAt: String? = nil, giveUpAt: String? = nil, failureReason: FailureReason? = nil,
                cancelRequestedAt: String? = nil, heldReason: HeldReason? = nil, postings: [Posting]? = nil) {
        self.id = id
        self.idempotencyKey = idempotencyKey
        self.payment = payment
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.state = state
        self.attempt = attempt
        self.lastError = lastError
        self.chargeID = chargeID
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.finishedAt = finishedAt
        self.giveUpAt = giveUpAt
        self.failureReason = failureReason
        self.cancelRequestedAt = cancelRequestedAt
        self.heldReason = heldReason
        self.postings = postings
    }
}

/// The API's JSON is flat: the payment's fields sit beside the job's own.
extension Job: Codable {
    enum CodingKeys: String, CodingKey {
        case id, state, attempt, priority, postings
        case idempotencyKey = "idempotency_key", maxAttempts = "max_attempts", lastError = "last_error"
        case chargeID = "charge_id", createdAt = "created_at", updatedAt = "updated_at", finishedAt = "finished_at"
        case giveUpAt = "give_up_at", failureReason = "failure_reason", cancelRequestedAt = "cancel_requested_at", heldReason = "held_reason"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try c.decode(Int64.self, forKey: .id),
            idempotencyKey: try c.decode(String.self, forKey: .idempotencyKey),
            payment: try Payment(from: decoder),
            priority: try c.decode(Int16.self, forKey: .priority),
            maxAttempts: try c.decode(Int32.self, forKey: .maxAttempts),
            state: try c.decode(JobState.self, forKey: .state),
            attempt: try c.decode(Int32.self, forKey: .attempt),
            lastError: try c.decodeIfPresent(String.self, forKey: .lastError),
            chargeID: try c.decodeIfPresent(String.self, forKey: .chargeID),
            createdAt: try c.decode(String.self, forKey: .createdAt),
            updatedAt: try c.decode(String.self, forKey: .updatedAt),
            finishedAt: try c.decodeIfPresent(String.self, forKey: .finishedAt),
            giveUpAt: try c.decodeIfPresent(String.self, forKey: .giveUpAt),
            failureReason: try c.decodeIfPresent(FailureReason.self, forKey: .failureReason),
            cancelRequestedAt: try c.decodeIfPresent(String.self, forKey: .cancelRequestedAt),
            heldReason: try c.decodeIfPresent(HeldReason.self, forKey: .heldReason),
            postings: try c.decodeIfPresent([Posting].self, forKey: .postings))
    }

    public func encode(to encoder: any Encoder) throws {
        try payment.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(idempotencyKey, forKey: .idempotencyKey)
        try c.encode(priority, forKey: .priority)
        try c.encode(maxAttempts, forKey: .maxAttempts)
        try c.encode(state, forKey: .state)
        try c.encode(attempt, forKey: .attempt)
        try c.encodeIfPresent(lastError, forKey: .lastError)
        try c.encodeIfPresent(chargeID, forKey: .chargeID)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encodeIfPresent(finishedAt, forKey: .finishedAt)
        try c.encodeIfPresent(giveUpAt, forKey: .giveUpAt)
        try c.encodeIfPresent(failureReason, forKey: .failureReason)
        try c.encodeIfPresent(cancelRequestedAt, forKey: .cancelRequestedAt)
        try c.encodeIfPresent(heldReason, forKey: .heldReason)
        try c.encodeIfPresent(postings, forKey: .postings)
    }
}
