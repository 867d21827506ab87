import Logging
import PostgresNIO

/// Every statement of the worker's queue, together: claim, complete, extend leases, reap.
/// Each is one statement through pgbouncer-write with unnamed statements only, so it is
/// safe under transaction pooling.
public struct JobStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    // MARK: claim

    /// Claims up to `limit` due jobs. The locking subquery sits in a CTE so the planner
    /// cannot update more rows than the LIMIT; SKIP LOCKED lets workers claim side by side.
    /// The `state` predicate matches the partial index of claimable rows.
    static func claimStatement(limit: Int, owner: String, lease: Duration) -> PostgresQuery {
        """
        WITH picked AS (
            SELECT id FROM payment_jobs
            WHERE state = \(JobState.queued) AND run_at <= now()
            ORDER BY priority, run_at, id
            LIMIT \(Int64(limit))
            FOR UPDATE SKIP LOCKED)
        UPDATE payment_jobs j
        SET state = \(JobState.running), attempt = j.attempt + 1, lease_owner = \(owner),
            lease_expires_at = now() + make_interval(secs => \(lease.seconds)), claimed_at = now(), updated_at = now()
        FROM picked WHERE j.id = picked.id
        RETURNING j.id, j.idempotency_key, j.amount_minor, j.currency::text, j.debtor, j.creditor, j.attempt, j.max_attempts
        """
    }

    public func claim(limit: Int, owner: String, lease: Duration) async throws -> [ClaimedJob] {
        let rows = try await client.query(Self.claimStatement(limit: limit, owner: owner, lease: lease), logger: logger)
        var jobs: [ClaimedJob] = []
        for try await (id, key, amount, currency, debtor, creditor, attempt, maxAttempts)
            in rows.decode((Int64, String, Int64, String, String, String, Int32, Int32).self) {
            jobs.append(ClaimedJob(id: id, idempotencyKey: key,
                                   payment: Payment(amountMinor: amount, currency: currency, debtor: debtor, creditor: creditor),
                                   attempt: attempt, maxAttempts: maxAttempts))
        }
        return jobs
    }

    // MARK: complete

    /// Records a batch of outcomes in one statement, fenced: a row changes only if it is
    /// still `running` under this owner and attempt, so a worker that lost its lease
    /// changes nothing. Succeeded jobs get their debit and credit in the same statement,
    /// and the ledger's unique (job, side) refuses a second posting. Returns each
    /// recorded job with its outcome; a fenced-off completion is simply absent.
    static func completeStatement(_ completions: [Completion], owner: String) -> PostgresQuery {
        var ids: [Int64] = [], attempts: [Int32] = [], outcomes: [Completion.Outcome] = [], states: [JobState] = []
        var chargeIDs: [String] = [], errors: [String] = [], delays: [Double] = [], refunds: [Int32] = []
        for c in completions {
            let r = c.resolution
            ids.append(c.jobID)
            attempts.append(c.attempt)
            outcomes.append(r.outcome)
            states.append(r.nextState)
            // Arrays cannot bind NULL elements; the outcome says which of the two applies.
            chargeIDs.append(r.chargeID ?? "")
            errors.append(r.error ?? "")
            delays.append(r.delay.seconds)
            refunds.append(r.refundsAttempt ? 1 : 0)
        }
        return """
            WITH input AS (
                SELECT * FROM unnest(\(ids)::int8[], \(attempts)::int4[], \(outcomes)::text[], \(states)::text[],
                                     \(chargeIDs)::text[], \(errors)::text[], \(delays)::float8[], \(refunds)::int4[])
                    AS t(id, attempt, outcome, next_state, charge_id, error, delay_s, refund)),
            done AS (
                UPDATE payment_jobs j SET
                    state = i.next_state,
                    finished_at = CASE WHEN i.next_state = ANY(\(JobState.terminal)::text[]) THEN now() END,
                    run_at = CASE WHEN i.next_state = \(JobState.queued) THEN now() + make_interval(secs => i.delay_s) ELSE j.run_at END,
                    attempt = j.attempt - i.refund,
                    charge_id = CASE WHEN i.outcome = \(Completion.Outcome.succeeded) THEN i.charge_id END,
                    last_error = CASE WHEN i.outcome = \(Completion.Outcome.succeeded) THEN j.last_error ELSE i.error END,
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
                FROM input i
                WHERE j.id = i.id AND j.state = \(JobState.running) AND j.lease_owner = \(owner) AND j.attempt = i.attempt
                RETURNING j.id, i.outcome, j.state, j.amount_minor, j.currency, j.debtor, j.creditor, j.attempt, j.created_at, j.finished_at),
            posted AS (
                INSERT INTO ledger_entries (job_id, side, account, amount_minor, currency, attempt)
                SELECT d.id, s.side,
                       CASE s.side WHEN 'debit' THEN d.debtor ELSE d.creditor END,
                       CASE s.side WHEN 'debit' THEN -d.amount_minor ELSE d.amount_minor END,
                       d.currency, d.attempt
                FROM done d CROSS JOIN (VALUES ('debit'), ('credit')) AS s(side)
                WHERE d.state = \(JobState.succeeded)
                RETURNING 1)
            SELECT d.id, d.outcome, EXTRACT(EPOCH FROM d.finished_at - d.created_at)::float8 FROM done d
            """
    }

    public func complete(_ completions: [Completion], owner: String) async throws -> [CompletedJob] {
        guard !completions.isEmpty else { return [] }
        let rows = try await client.query(Self.completeStatement(completions, owner: owner), logger: logger)
        var completed: [CompletedJob] = []
        for try await (id, outcome, latency) in rows.decode((Int64, Completion.Outcome, Double?).self) {
            completed.append(CompletedJob(id: id, outcome: outcome, latencySeconds: latency))
        }
        return completed
    }

    // MARK: leases

    /// Extends the leases of jobs this owner still holds; returns how many it still holds.
    public func extendLeases(ids: [Int64], owner: String, lease: Duration) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        let rows = try await client.query("""
            WITH extended AS (
                UPDATE payment_jobs SET lease_expires_at = now() + make_interval(secs => \(lease.seconds))
                WHERE id = ANY(\(ids)::int8[]) AND state = \(JobState.running) AND lease_owner = \(owner)
                RETURNING 1)
            SELECT count(*)::int8 FROM extended
            """, logger: logger)
        for try await (count) in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Returns expired `running` jobs to the queue. Safe from every worker at once.
    public func reapExpiredLeases(limit: Int = 1_000) async throws -> Int {
        let rows = try await client.query("""
            WITH expired AS (
                SELECT id FROM payment_jobs
                WHERE state = \(JobState.running) AND lease_expires_at < now()
                ORDER BY lease_expires_at
                LIMIT \(Int64(limit))
                FOR UPDATE SKIP LOCKED),
            requeued AS (
                UPDATE payment_jobs j SET state = \(JobState.queued), run_at = now(), updated_at = now(),
                    last_error = 'lease of ' || j.lease_owner || ' expired: worker stopped or lost the database',
                    lease_owner = NULL, lease_expires_at = NULL
                FROM expired WHERE j.id = expired.id
                RETURNING 1)
            SELECT count(*)::int8 FROM requeued
            """, logger: logger)
        for try await (count) in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
}
