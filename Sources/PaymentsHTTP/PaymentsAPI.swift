import PaymentsCore

/// What the HTTP layer needs from the rest of the server. `LivePaymentsAPI` is the real
/// one (the database, the worker's figures, the gateway); tests of the HTTP contract put
/// a fake behind it.
public protocol PaymentsAPI: Sendable {
    /// The ISO 4217 codes a payment may use.
    func currencies() async throws -> Set<String>
    func create(_ request: PaymentRequest, idempotencyKey: String) async throws -> CreateResult
    func payment(id: Int64, freshnessToken: String?) async throws -> Routed<Job?>
    /// Asks to cancel payment `id` (nil: no such payment) and returns what it did with the
    /// payment as it is now.
    func cancel(id: Int64) async throws -> CancelResult?
    func stats() async throws -> ServerStats
    /// What keeps the server from serving, one line each; empty when ready.
    func readinessProblems() async -> [String]
}

/// What `POST /v1/payments/{id}/cancel` did.
public struct CancelResult: Sendable {
    public var outcome: JobStore.CancelOutcome
    /// The payment after the request (nil if it could not be read back).
    public var job: Job?

    public init(outcome: JobStore.CancelOutcome, job: Job?) {
        self.outcome = outcome
        self.job = job
    }
}
