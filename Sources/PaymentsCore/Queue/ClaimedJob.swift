import Foundation

/// A job as a worker holds it between claim and completion.
public struct ClaimedJob: Sendable, Equatable {
    public var id: Int64
    public var idempotencyKey: String
    public var payment: Payment
    /// This claim's attempt number (1-based): the fence of its completion.
    public var attempt: Int32
    public var maxAttempts: Int32
    /// When the lease taken by this claim ends (the database's clock). Heartbeats extend
    /// the lease, but the charge's deadline stays here: a charge sent under this claim can
    /// never land after the lease the claim was given.
    public var leaseExpiresAt: Date

    public init(id: Int64, idempotencyKey: String, payment: Payment, attempt: Int32, maxAttempts: Int32, leaseExpiresAt: Date) {
        self.id = id
        self.idempotencyKey = idempotencyKey
        self.payment = payment
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.leaseExpiresAt = leaseExpiresAt
    }

    /// The gateway call for this claim, due within `timeout` and never after the lease the
    /// claim got, whichever comes first.
    public func chargeRequest(within timeout: Duration, now: Date = Date()) -> ChargeRequest {
        ChargeRequest(idempotencyKey: idempotencyKey, payment: payment, jobID: id, attempt: attempt,
                      deadline: min(leaseExpiresAt, now + timeout.seconds))
    }
}
