/// Which of the provider's charges `payments reconcile --adopt` re-creates as payments, and
/// under which ids. Pure: every rule is unit-tested without a database or a provider.
///
/// The provider's records are input like any request: each is checked as intake checks a
/// payment (key, amount, currency, accounts) before it becomes a payment, and a record the
/// intake would refuse is reported, not adopted. A job id from the provider is kept only
/// where it cannot harm the id sequence: positive, not taken by an earlier record of the
/// same plan, and at most `idWindow` past the sequence (a restore moves the sequence a
/// million past every id it lost, so every lost id is below it; a record naming an id far
/// beyond would otherwise move the sequence there).
public struct AdoptionPlan: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var charge: ChargeRecord
        public var payment: Payment
        /// Re-created under the charge's job id (when no payment holds it by then);
        /// otherwise under a new id from the sequence.
        public var keepsID: Bool
    }

    /// A charge not adopted, and why (a person decides).
    public struct Refusal: Sendable, Equatable, Encodable {
        public var key: String
        public var chargeID: String
        public var reason: String

        enum CodingKeys: String, CodingKey { case key, chargeID = "charge_id", reason }
    }

    public static let idWindow: Int64 = 1_000_000

    public var entries: [Entry] = []
    /// Records naming no accounts (written before the provider kept them).
    public var withoutAccounts: [String] = []
    public var refused: [Refusal] = []

    /// - Parameters:
    ///   - charges: the provider's charges whose key the database does not know.
    ///   - currencies: the currencies table.
    ///   - sequence: `payment_ids`'s last value.
    public init(charges: [ChargeRecord], currencies: Set<String>, sequence: Int64) {
        var seenKeys = Set<String>(), keptIDs = Set<Int64>()
        for charge in charges where !charge.isRefunded {
            guard seenKeys.insert(charge.key).inserted else {
                refused.append(.init(key: charge.key, chargeID: charge.chargeID, reason: "the provider lists this key twice: only its first charge is adopted"))
                continue
            }
            guard let payment = charge.payment else { withoutAccounts.append(charge.key); continue }
            if let problem = Self.problem(charge, payment, currencies: currencies) {
                refused.append(.init(key: charge.key, chargeID: charge.chargeID, reason: problem))
                continue
            }
            let keepsID = charge.jobID > 0 && charge.jobID <= sequence + Self.idWindow && keptIDs.insert(charge.jobID).inserted
            entries.append(Entry(charge: charge, payment: payment, keepsID: keepsID))
        }
    }

    /// The highest id kept: the sequence must be past it before anything else takes an id.
    public var highestKeptID: Int64 { entries.filter(\.keepsID).map(\.charge.jobID).max() ?? 0 }

    /// What intake would refuse in this record, in words; nil when it is a payment.
    static func problem(_ charge: ChargeRecord, _ payment: Payment, currencies: Set<String>) -> String? {
        if !PaymentRequest.isValidIdempotencyKey(charge.key) { return "the key is not a valid idempotency key (1-255 printable ASCII characters)" }
        if charge.chargeID.isEmpty { return "the record has no charge id" }
        if payment.amountMinor <= 0 || payment.amountMinor > PaymentRequest.maxAmountMinor {
            return "amount_minor \(payment.amountMinor) is outside 1...\(PaymentRequest.maxAmountMinor)"
        }
        if !currencies.contains(payment.currency) { return "currency '\(payment.currency.prefix(16))' is not in the currencies table" }
        if !PaymentRequest.isValidAccount(payment.debtor) || !PaymentRequest.isValidAccount(payment.creditor) {
            return "debtor and creditor must be 1-64 characters of A-Z a-z 0-9 _ . : -"
        }
        if payment.debtor == payment.creditor { return "debtor and creditor are the same account" }
        return nil
    }
}
