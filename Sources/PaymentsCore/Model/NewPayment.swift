/// A payment to insert: its validated body and the client's idempotency key.
public struct NewPayment: Sendable, Equatable {
    public var idempotencyKey: String
    public var request: PaymentRequest
    /// 1-based line number for file input, 0 for generated jobs.
    public var line: Int

    public init(idempotencyKey: String, request: PaymentRequest, line: Int = 0) {
        self.idempotencyKey = idempotencyKey
        self.request = request
        self.line = line
    }
}
