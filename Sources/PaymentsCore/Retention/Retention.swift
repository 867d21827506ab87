import Logging
import PostgresNIO

/// `payments prune`: moves failed and cancelled payments finished more than a retention
/// period ago from payment_history into payment_jobs_archive, in batches of one
/// statement each (a moved row is deleted and archived atomically). Succeeded payments
/// are never moved (the history's guard refuses it: the ledger points at them). Every
/// key stays taken in payment_keys. It also creates the history's and the ledger's
/// partitions ahead, as `serve` does.
public struct Retention: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    /// Final states without ledger entries: safe to move out of the history.
    static let prunable: [JobState] = [.failed, .cancelled]

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Returns how many jobs were archived.
    public func prune(olderThan age: Duration, batchSize: Int = 5_000, dryRun: Bool = false) async throws -> Int {
        let seconds = age.seconds
        if dryRun {
            let query: PostgresQuery = """
                SELECT count(*)::int8 FROM payment_history
                WHERE state = ANY(\(Self.prunable)::text[]) AND finished_at < now() - make_interval(secs => \(seconds))
                """
            for try await (n) in try await client.query(query, logger: logger).decode(Int64.self) { return Int(n) }
            return 0
        }
        // The same upkeep as serve's. A generous statement timeout: each partition it
        // creates waits at most 1 s for its lock (the SQL function's own bound).
        try await JobStore(client: client, statementTimeout: .seconds(120), logger: logger).addPartitions(ahead: 2)
        var total = 0
        while true {
            let query = Self.archiveStatement(olderThan: seconds, batchSize: batchSize)
            // In a transaction: an autocommit statement's answer arrives before its commit
            // (see Enqueuer.insertBatch), and the count printed must be what moved.
            let moved = try await client.withTransaction(logger: logger) { connection in
                var moved = 0
                for try await (n) in try await connection.query(query, logger: logger).decode(Int64.self) { moved = Int(n) }
                return moved
            }
            total += moved
            if moved > 0 { logger.info("archived terminal jobs", metadata: ["jobs": "\(moved)", "total": "\(total)"]) }
            if moved < batchSize { return total }
        }
    }

    /// Moves one batch of prunable payments finished `seconds` ago from the history to the
    /// archive, skipping any with ledger entries; returns how many moved.
    static func archiveStatement(olderThan seconds: Double, batchSize: Int) -> PostgresQuery {
        """
            WITH victims AS (
                SELECT id FROM payment_history
                WHERE state = ANY(\(Self.prunable)::text[]) AND finished_at < now() - make_interval(secs => \(seconds))
                ORDER BY finished_at
                LIMIT \(Int64(batchSize))
                FOR UPDATE SKIP LOCKED),
            moved AS (
                DELETE FROM payment_history j USING victims v WHERE j.id = v.id
                  AND NOT EXISTS (SELECT 1 FROM ledger_entries l WHERE l.job_id = j.id)
                RETURNING j.*),
            archived AS (
                -- Named columns: the archive's order differs (archived_at came before later columns).
                INSERT INTO payment_jobs_archive (
                    id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor, state, attempt,
                    max_attempts, priority, run_at, lease_owner, lease_expires_at, last_error, charge_id, created_at,
                    claimed_at, updated_at, finished_at, lease_losses, give_up_at, failure_reason, cancel_requested_at,
                    held_reason, claim_seq, charge_deadline_at)
                SELECT id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor, state, attempt,
                       max_attempts, priority, run_at, lease_owner, lease_expires_at, last_error, charge_id, created_at,
                       claimed_at, updated_at, finished_at, lease_losses, give_up_at, failure_reason, cancel_requested_at,
                       held_reason, claim_seq, charge_deadline_at
                FROM moved RETURNING 1)
            SELECT count(*)::int8 FROM archived
            """
    }
}
