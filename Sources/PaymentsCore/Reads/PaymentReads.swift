import Logging
import PostgresNIO

/// `GET /v1/payments/{id}`: a job with its postings, from a replica when the replica has
/// it and has replayed the client's freshness token, else from the primary. Concurrent
/// reads share statements (`ReadBatcher`).
public struct PaymentReads: Sendable {
    public let router: ReadRouter
    private let batcher: ReadBatcher

    public init(router: ReadRouter) {
        self.router = router
        self.batcher = ReadBatcher(router: router)
    }

    /// - Parameter freshnessToken: a WAL position a write returned; the answer is at
    ///   least that fresh (read-your-writes).
    public func job(id: Int64, freshnessToken: String?) async throws -> Routed<Job?> {
        try await batcher.job(id: id, freshnessToken: freshnessToken)
    }
}
