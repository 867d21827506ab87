import Logging
import PostgresNIO

public enum CreateResult: Sendable, Equatable {
    case created(Job, freshnessToken: String)
    case existing(Job, freshnessToken: String)
    case keyReusedWithDifferentBody(existingID: Int64)
}

/// `POST /v1/payments`: one payment through pgbouncer-write, idempotent by key.
public struct PaymentIntake: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Raised inside the insert's transaction to roll it back: prune archived this key's
    /// old payment while the insert waited for it, so the key is taken.
    private struct KeyArchivedMeanwhile: Error {}

    public func create(_ request: PaymentRequest, idempotencyKey: String) async throws -> CreateResult {
        let insert = IntakeSQL.insertReturningJobs(PaymentRows([NewPayment(idempotencyKey: idempotencyKey, request: request)]))
        var created: Job?
        do {
            created = try await client.withTransaction(logger: logger) { connection -> Job? in
                var job: Job?
                for try await row in try await connection.query(insert, logger: logger) {
                    job = try Job.decode(row.makeRandomAccess(), at: 0)
                }
                // A newer snapshot than the insert's: sees an archive row that prune
                // committed while the insert waited on the old payment's row.
                if job != nil {
                    for try await (archived) in try await connection.query(IntakeSQL.archived(idempotencyKey: idempotencyKey), logger: logger)
                        .decode(Bool.self) where archived {
                        throw KeyArchivedMeanwhile()
                    }
                }
                return job
            }
        } catch where rootCause(error) is KeyArchivedMeanwhile {
            logger.info("key archived while inserting; answering with the archived payment", metadata: ["idempotency_key": "\(idempotencyKey)"])
            created = nil
        }
        // The token is read after the commit: the commit record's WAL position is then
        // at or before it, so a replica that has replayed past it has the row.
        let token = try await currentLSN()
        if let created { return .created(created, freshnessToken: token) }

        for try await row in try await client.query(IntakeSQL.lookup(idempotencyKey: idempotencyKey), logger: logger) {
            let columns = row.makeRandomAccess()
            let fingerprint = try columns[0].decode(String.self)
            guard let job = try Job.decode(columns, at: 1) else { break }
            guard fingerprint == request.fingerprint else { return .keyReusedWithDifferentBody(existingID: job.id) }
            return .existing(job, freshnessToken: token)
        }
        throw PaymentsError.database("payment with idempotency key vanished between insert and lookup")
    }

    func currentLSN() async throws -> String {
        for try await (lsn) in try await client.query(IntakeSQL.currentLSN, logger: logger).decode(String.self) {
            return lsn
        }
        throw PaymentsError.database("pg_current_wal_lsn() returned nothing")
    }
}
