/// A job as a worker holds it between claim and completion.
public struct ClaimedJob: Sendable, Equatable {
    public var id: Int64
    public var idempotencyKey: String
    public var payment: Payment
    /// This claim's attempt number (1-based): the fence of its completion.
    public var attempt: Int32
    public var maxAttempts: Int32

    public init(id: Int64, idempotencyKey: String, payment: Payment, attempt: Int32, maxAttempts: Int32) {
        self.id = id
        self.idempotencyKey = idempotencyKey
        self.payment = payment
        self.attempt = attempt
        self.maxAttempts = maxAttempts
    }

    public var chargeRequest: ChargeRequest {
        ChargeRequest(idempotencyKey: idempotencyKey, payment: payment, jobID: id, attempt: attempt)
    }
}
