import Foundation

/// A job as a worker holds it between claim and completion.
public struct ClaimedJob: Sendable, Equatable {
    public var id: Int64
    public var idempotencyKey: String
    public var payment: Payment
    /// This claim's attempt number (1-based): the fence of its completion.
    public var attempt: Int32
    public var maxAttempts: Int32
    /// When the lease taken by this claim ends, on this process's clock (see
    /// `JobStore.claim`). Heartbeats extend the lease, but the charge's deadline stays here.
    public var leaseExpiresAt: Date
    /// The end of the payment's retry budget: past it a transient failure is no longer
    /// retried but settled with the gateway, and fails only if the gateway holds no charge.
    public var giveUpAt: Date
    /// A cancel was asked: no new request is sent for it.
    public var cancelRequested: Bool
    /// The claim's sequence number (`claim_seq`): the fence of its outcome.
    public var claim: Int64
    /// How long it had been due (`run_at`) when it was claimed, on the database's clock:
    /// the wait for a claim, the first stage of a payment's latency.
    public var waitedSeconds: Double
    /// Re-created from the provider's record (`payments reconcile --adopt`): the provider
    /// said it was charged, so it is never queued to be charged again.
    public var adopted: Bool

    public init(id: Int64, idempotencyKey: String, payment: Payment, attempt: Int32, maxAttempts: Int32, leaseExpiresAt: Date,
                giveUpAt: Date = .distantFuture, cancelRequested: Bool = false, claim: Int64 = 0, waitedSeconds: Double = 0,
                adopted: Bool = false) {
        self.id = id
        self.idempotencyKey = idempotencyKey
        self.payment = payment
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.leaseExpiresAt = leaseExpiresAt
        self.giveUpAt = giveUpAt
        self.cancelRequested = cancelRequested
        self.claim = claim
        self.waitedSeconds = waitedSeconds
        self.adopted = adopted
    }

    /// The gateway call for this claim, due within `timeout` and never after the lease the
    /// claim got, whichever comes first.
    public func chargeRequest(within timeout: Duration, now: Date = Date()) -> ChargeRequest {
        ChargeRequest(idempotencyKey: idempotencyKey, payment: payment, jobID: id, attempt: attempt,
                      deadline: min(leaseExpiresAt, now + timeout.seconds))
    }
}
