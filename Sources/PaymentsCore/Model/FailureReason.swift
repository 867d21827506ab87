import PostgresNIO

/// Why a payment ended `failed`: a closed set, and every reason is the payer's to act on.
/// Our own faults (timeouts, 5xx, lost answers, requests in progress, lost leases, a
/// restart of anything) are never among them: they only delay a payment, until its retry
/// budget runs out with the gateway proving it holds no charge (`budgetExhausted`).
/// The database's check constraint on `payment_history.failure_reason` lists the same cases.
public enum FailureReason: String, Sendable, Codable, CaseIterable, PostgresTextEnum {
    /// The provider declined the card (a decline code it gave, or one it did not name).
    case cardDeclined = "card_declined"
    case insufficientFunds = "insufficient_funds"
    case accountBlocked = "account_blocked"
    /// A decline whose code is not one of the above.
    case declined
    /// The payment's retry budget (a time) ran out, and the gateway proved it holds no
    /// charge for the payment's key after every request's deadline.
    case budgetExhausted = "budget_exhausted"

    /// The reason for a provider's decline code.
    public init(declineCode: String?) {
        switch declineCode {
        case "card_declined"?: self = .cardDeclined
        case "insufficient_funds"?: self = .insufficientFunds
        case "account_blocked"?: self = .accountBlocked
        default: self = .declined
        }
    }

    public var isDecline: Bool { self != .budgetExhausted }
}

/// Why a `reconciling` payment is held for an operator instead of being asked about again.
public enum HeldReason: String, Sendable, Codable, CaseIterable, PostgresTextEnum {
    /// The gateway holds a charge under the payment's key for another amount or currency.
    case chargeMismatch = "charge_mismatch"
    /// A payment re-created from the provider's record (`payments reconcile --adopt`)
    /// whose charge the provider no longer holds (refunded, or its record gone): the
    /// provider said it charged the payer, so it is never charged again by itself.
    case adoptedChargeMissing = "adopted_charge_missing"
}
