/// What comparing the provider's charges with the database found (`payments reconcile`).
/// Pure: built from what both sides said, so every rule is unit-tested without either.
public struct SettlementReport: Sendable, Equatable, Encodable {
    /// One discrepancy, with what each side says.
    public struct Finding: Sendable, Equatable, Encodable {
        public var key: String
        public var paymentID: Int64?
        public var chargeID: String?
        public var state: String?
        public var detail: String

        enum CodingKeys: String, CodingKey {
            case key, paymentID = "payment_id", chargeID = "charge_id", state, detail
        }
    }

    /// The database's view of one payment, by key.
    public struct Payment: Sendable, Equatable {
        public var id: Int64
        public var state: JobState
        public var amountMinor: Int64
        public var currency: String
        public var chargeID: String?

        public init(id: Int64, state: JobState, amountMinor: Int64, currency: String, chargeID: String?) {
            self.id = id
            self.state = state
            self.amountMinor = amountMinor
            self.currency = currency
            self.chargeID = chargeID
        }
    }

    public var chargesListed = 0
    public var succeededChecked = 0
    /// Charges whose key the database does not know: money taken with no payment (a
    /// database restored to an earlier point). `--adopt` re-creates them.
    public var unknownKeys: [Finding] = []
    /// Charges whose payment ended `failed` or `cancelled`.
    public var notSucceeded: [Finding] = []
    /// Charges whose payment is still open (queued, running, reconciling): it settles by
    /// itself; listed, not a discrepancy.
    public var open: [Finding] = []
    /// Succeeded payments the provider holds no charge for (or whose charge it refunded).
    public var succeededWithoutCharge: [Finding] = []
    /// The provider's charge and the payment disagree on amount, currency or charge id.
    public var mismatches: [Finding] = []

    public init() {}

    /// Whether anything needs a person (open payments do not).
    public var isClean: Bool { unknownKeys.isEmpty && notSucceeded.isEmpty && succeededWithoutCharge.isEmpty && mismatches.isEmpty }

    enum CodingKeys: String, CodingKey {
        case chargesListed = "charges_listed", succeededChecked = "succeeded_checked", unknownKeys = "unknown_keys"
        case notSucceeded = "not_succeeded", open, succeededWithoutCharge = "succeeded_without_charge", mismatches, clean
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(chargesListed, forKey: .chargesListed)
        try c.encode(succeededChecked, forKey: .succeededChecked)
        try c.encode(unknownKeys, forKey: .unknownKeys)
        try c.encode(notSucceeded, forKey: .notSucceeded)
        try c.encode(open, forKey: .open)
        try c.encode(succeededWithoutCharge, forKey: .succeededWithoutCharge)
        try c.encode(mismatches, forKey: .mismatches)
        try c.encode(isClean, forKey: .clean)
    }

    /// Adds one provider charge, given the payment the database holds under its key (nil:
    /// the key is unknown).
    public mutating func add(charge: ChargeRecord, payment: Payment?) {
        chargesListed += 1
        guard let payment else {
            // Money given back needs no payment.
            if !charge.isRefunded {
                unknownKeys.append(Finding(key: charge.key, paymentID: nil, chargeID: charge.chargeID, state: nil,
                                           detail: "charged \(charge.amountMinor) \(charge.currency); the database does not know this key"))
            }
            return
        }
        func finding(_ detail: String) -> Finding {
            Finding(key: charge.key, paymentID: payment.id, chargeID: charge.chargeID, state: payment.state.rawValue, detail: detail)
        }
        if charge.amountMinor != payment.amountMinor || charge.currency != payment.currency {
            mismatches.append(finding("charged \(charge.amountMinor) \(charge.currency); the payment is \(payment.amountMinor) \(payment.currency)"))
            return
        }
        switch payment.state {
        case .succeeded:
            if charge.isRefunded {
                succeededWithoutCharge.append(finding("the provider refunded this succeeded payment's charge"))
            } else if payment.chargeID != charge.chargeID {
                mismatches.append(finding("the payment records charge \(payment.chargeID ?? "none"); the provider's is \(charge.chargeID)"))
            }
        case .failed, .cancelled:
            // A refunded charge of a cancelled payment is the held-payment runbook's end.
            if !charge.isRefunded {
                notSucceeded.append(finding("charged \(charge.amountMinor) \(charge.currency); the payment ended \(payment.state.rawValue)"))
            }
        case .queued, .running, .reconciling:
            if !charge.isRefunded { open.append(finding("charged; the payment is \(payment.state.rawValue) and settles by itself")) }
        }
    }

    /// Adds one succeeded payment of the database that the provider's listing did not
    /// contain (the caller checks the listing's keys).
    public mutating func addSucceededWithoutCharge(key: String, paymentID: Int64, chargeID: String?) {
        succeededWithoutCharge.append(Finding(key: key, paymentID: paymentID, chargeID: chargeID, state: JobState.succeeded.rawValue,
                                              detail: "succeeded with charge \(chargeID ?? "none"); the provider holds no charge under this key"))
    }
}
