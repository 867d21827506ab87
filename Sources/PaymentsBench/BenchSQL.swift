import Foundation
import Logging
import PostgresNIO

/// The bench's own statements, through pgbouncer-write (the primary's view).
struct BenchSQL: Sendable {
    let client: PostgresClient
    let logger: Logger

    func execute(_ sql: String) async throws {
        for statement in sql.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }) where !statement.isEmpty {
            _ = try await client.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
        }
    }

    func int(_ query: PostgresQuery) async throws -> Int64 {
        for try await (value) in try await client.query(query, logger: logger).decode(Int64?.self) { return value ?? 0 }
        return 0
    }

    /// The bench's jobs still open (queued, running, reconciling).
    func openJobs(prefix: String) async throws -> Int {
        Int(try await int("SELECT count(*) FROM payment_queue WHERE idempotency_key LIKE \(prefix + "-%")"))
    }

    /// Where a run's rate is counted from: its first claim (a drain, whose queue was full
    /// before the serve started) or its first enqueue (a paced run: the offered rate when
    /// the path kept up, less when its queue grew).
    enum RateStart: String { case firstClaim = "claimed_at", firstEnqueue = "created_at" }

    /// A run's jobs per second, from `start` to its last completion.
    func rate(prefix: String, from start: RateStart) async throws -> Double {
        Double(try await int("""
            SELECT round(count(*) / extract(epoch from max(finished_at) - min(\(unescaped: start.rawValue))))::int8
            FROM payments_by_key(\(prefix + "-%"))
            """))
    }

    /// Enqueue to completion of a run's finished jobs, seconds.
    func latencies(prefix: String) async throws -> [Double] {
        var values: [Double] = []
        let rows = try await client.query("""
            SELECT extract(epoch from finished_at - created_at)::float8 FROM payments_by_key(\(prefix + "-%")) WHERE finished_at IS NOT NULL
            """, logger: logger)
        for try await (value) in rows.decode(Double.self) { values.append(value) }
        return values
    }

    /// Ids of finished payments to read (the history); the queue's when there is none yet.
    func idRange() async throws -> (Int64, Int64) {
        let lo = try await int("SELECT COALESCE((SELECT max(id) - 100000 FROM payment_history), (SELECT min(id) FROM payment_queue), 1)")
        let hi = try await int("SELECT COALESCE((SELECT max(id) FROM payment_history), (SELECT max(id) FROM payment_queue), 1)")
        return (max(1, lo), max(1, hi))
    }

    /// Takes `n` ids from the payments' sequence (the COPY ceiling writes ids itself);
    /// returns the one before the first.
    func reserveIDs(_ n: Int) async throws -> Int64 {
        try await int("SELECT setval('payment_ids', nextval('payment_ids') + \(Int64(n)))") - Int64(n)
    }

    /// Client backends of the application's user on the primary (the poolers' server
    /// connections), not counting this one.
    func serverConnections() async throws -> Int {
        Int(try await int("""
            SELECT count(*) FROM pg_stat_activity WHERE usename = current_user AND backend_type = 'client backend' AND pid <> pg_backend_pid()
            """))
    }

    /// Vacuums the tables a run writes before it is measured, as pgbench vacuums its
    /// tables before each of its runs: every job a run moves to the history leaves a dead
    /// row in the queue, and the run after 100,000 of them measured their cleanup (the
    /// in-process drain at 11,596 jobs/s right after the enqueue phase, 22,314 on a fresh
    /// topology; 2026-12-06), not this code. The history, ledger and keys too: the runs
    /// before put hundreds of thousands of rows in them, and autovacuum's pass over them
    /// landed in whichever run came next (the full bench's tenth measured p50 40.9 ms
    /// after its drains, the same build's latency phase alone 35.8; 2026-12-06).
    func vacuumWrittenTables() async throws {
        for table in ["payment_queue", "payment_keys", "payment_history", "ledger_entries"] {
            _ = try await client.query(PostgresQuery(unsafeSQL: "VACUUM (ANALYZE) \(table)"), logger: logger).collect()
        }
    }

    /// Discards every queued or running job: benchmark data only (the bench starts from an
    /// idle queue and leaves one). Moved to the history as `cancelled` without any of a
    /// real cancel's checks; reconciling jobs are left to the reconciler.
    func discardOpenJobs() async throws {
        _ = try await client.query(PostgresQuery(unsafeSQL: Self.discardStatement), logger: logger).collect()
    }

    /// Every column named (a test holds it to the history's columns): one left out would be
    /// lost as NULL.
    static let discardStatement = """
        WITH gone AS (DELETE FROM payment_queue WHERE state IN ('queued', 'running') RETURNING *)
        INSERT INTO payment_history (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
                                     state, attempt, max_attempts, priority, run_at, lease_owner, lease_expires_at,
                                     last_error, charge_id, created_at, claimed_at, updated_at, finished_at, lease_losses,
                                     give_up_at, failure_reason, cancel_requested_at, held_reason, claim_seq, charge_deadline_at)
        SELECT id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
               'cancelled', attempt, max_attempts, priority, run_at, NULL, NULL,
               'discarded by payments bench: benchmark data', NULL, created_at, claimed_at, now(), now(), lease_losses,
               give_up_at, NULL, cancel_requested_at, NULL, claim_seq, charge_deadline_at
        FROM gone
        """
}
