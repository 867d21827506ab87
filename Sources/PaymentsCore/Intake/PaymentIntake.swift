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

    /// The retry budget of a payment that names none (seconds from its creation).
    public var giveUpAfterSeconds: Int32 = PaymentRequest.defaultGiveUpAfterSeconds
    /// Announces new payments to listening claimers (nil: they find them by polling).
    public var announcer: WorkAnnouncer? = WorkAnnouncer()

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func create(_ request: PaymentRequest, idempotencyKey: String) async throws -> CreateResult {
        let insert = IntakeSQL.insertReturningJobs(PaymentRows([NewPayment(idempotencyKey: idempotencyKey, request: request)], budgetSeconds: giveUpAfterSeconds))
        // In a transaction: an autocommit statement's answer arrives before its commit
        // (see Enqueuer.insertBatch), and a 201 means committed.
        let created = try await WorkAnnouncer.transaction(on: client, announcer: announcer, logger: logger,
                                                          queued: { $0 != nil }) { connection -> Job? in
            var job: Job?
            for try await row in try await connection.query(insert, logger: logger) {
                job = try Job.decode(row.makeRandomAccess(), at: 0)
            }
            return job
        }
        // The token is read after the commit: the commit record's WAL position is then
        // at or before it, so a replica that has replayed past it has the row.
        let token = try await currentLSN()
        if let created { return .created(created, freshnessToken: token) }

        for try await row in try await client.query(IntakeSQL.lookup(idempotencyKey: idempotencyKey), logger: logger) {
            let columns = row.makeRandomAccess()
            let fingerprint = try columns[0].decode(String.self)
            guard let job = try Job.decode(columns, at: 1) else { break }
            guard request.matches(storedFingerprint: fingerprint) else { return .keyReusedWithDifferentBody(existingID: job.id) }
            return .existing(job, freshnessToken: token)
        }
        // Not inserted and no payment holds the key: the catalog lacks the currency (it
        // changed after the handler's cached check); nothing was written.
        throw PaymentValidationError(code: "invalid_currency", field: "currency",
                                     message: "currency '\(request.payment.currency)' is not in the currencies table")
    }

    public func currentLSN() async throws -> String {
        for try await (lsn) in try await client.query(IntakeSQL.currentLSN, logger: logger).decode(String.self) {
            return lsn
        }
        throw PaymentsError.database("pg_current_wal_lsn() returned nothing")
    }
}
