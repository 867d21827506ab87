import Logging
import PostgresNIO

/// `GET /v1/payments/{id}`: a job with its postings, from a replica when the replica has
/// it and has replayed the client's freshness token, else from the primary.
public struct PaymentReads: Sendable {
    public let router: ReadRouter

    public init(router: ReadRouter) {
        self.router = router
    }

    /// - Parameter freshnessToken: a WAL position a write returned; the answer is at
    ///   least that fresh (read-your-writes).
    public func job(id: Int64, freshnessToken: String?) async throws -> Routed<Job?> {
        try await router.read(ReadStatements.job(id: id, freshAs: freshnessToken)) { rows in
            guard let row = rows.first, var job = try Job.decode(row, at: ReadNode.columnCount) else { return nil }
            job.postings = try Job.decodePostings(row, at: ReadNode.columnCount + Job.columnCount)
            return job
        } unusable: { job, source in
            // A job created a moment ago may not have reached this replica yet.
            job == nil ? "not found on \(source.node)" : nil
        }
    }
}
