import Foundation
import Logging
import PostgresNIO

/// A job as a worker holds it between claim and completion.
public struct ClaimedJob: Sendable, Equatable {
    public var id: Int64
    public var idempotencyKey: String
    public var amountMinor: Int64
    public var currency: String
    public var debtor: String
    public var creditor: String
    public var attempt: Int32
    public var maxAttempts: Int32

    public var chargeRequest: ChargeRequest {
        ChargeRequest(idempotencyKey: idempotencyKey, amountMinor: amountMinor, currency: currency,
                      debtor: debtor, creditor: creditor, jobID: id, attempt: attempt)
    }
}

/// What a worker decided about one claimed job.
public struct Completion: Sendable, Equatable {
    public enum Resolution: Sendable, Equatable {
        case succeeded(chargeID: String)
        case retry(error: String, after: Duration)
        case failed(error: String)
        /// Back to the queue at once, the attempt not counted (shutdown before an answer).
        case release(reason: String)
    }
    public var jobID: Int64
    public var attempt: Int32
    public var resolution: Resolution

    public init(jobID: Int64, attempt: Int32, resolution: Resolution) {
        self.jobID = jobID
        self.attempt = attempt
        self.resolution = resolution
    }
}

/// One completed job as the database recorded it.
public struct CompletedJob: Sendable, Equatable {
    public var id: Int64
    public var state: String
    /// Enqueue to completion, for terminal jobs.
    public var latencySeconds: Double?
}

/// The queue's SQL: every operation is one statement through pgbouncer-write, with
/// unnamed statements only, so it is safe under transaction pooling.
public struct JobStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Claims up to `limit` due jobs. The locking subquery sits in a CTE so the planner
    /// cannot update more rows than the LIMIT; SKIP LOCKED lets workers claim side by side.
    public func claim(limit: Int, owner: String, lease: Duration) async throws -> [ClaimedJob] {
        let leaseSeconds = lease.seconds
        let rows = try await client.query("""
            WITH picked AS (
                SELECT id FROM payment_jobs
                WHERE state = 'queued' AND run_at <= now()
                ORDER BY priority, run_at, id
                LIMIT \(Int64(limit))
                FOR UPDATE SKIP LOCKED)
            UPDATE payment_jobs j
            SET state = 'running', attempt = j.attempt + 1, lease_owner = \(owner),
                lease_expires_at = now() + make_interval(secs => \(leaseSeconds)), claimed_at = now(), updated_at = now()
            FROM picked WHERE j.id = picked.id
            RETURNING j.id, j.idempotency_key, j.amount_minor, j.currency::text, j.debtor, j.creditor, j.attempt, j.max_attempts
            """, logger: logger)
        var jobs: [ClaimedJob] = []
        for try await (id, key, amount, currency, debtor, creditor, attempt, maxAttempts)
            in rows.decode((Int64, String, Int64, String, String, String, Int32, Int32).self) {
            jobs.append(ClaimedJob(id: id, idempotencyKey: key, amountMinor: amount, currency: currency,
                                   debtor: debtor, creditor: creditor, attempt: attempt, maxAttempts: maxAttempts))
        }
        return jobs
    }

    /// Records a batch of outcomes in one statement, fenced: a row changes only if it is
    /// still `running` under this owner and attempt, so a worker that lost its lease
    /// changes nothing. Succeeded jobs get their debit and credit in the same statement,
    /// and the ledger's unique (job, side) refuses a second posting.
    public func complete(_ completions: [Completion], owner: String) async throws -> [CompletedJob] {
        guard !completions.isEmpty else { return [] }
        var ids: [Int64] = [], attempts: [Int32] = [], outcomes: [String] = []
        var details: [String] = [], delays: [Double] = []
        for c in completions {
            ids.append(c.jobID)
            attempts.append(c.attempt)
            switch c.resolution {
            case let .succeeded(chargeID): outcomes.append("succeeded"); details.append(chargeID); delays.append(0)
            case let .retry(error, after): outcomes.append("retry"); details.append(error); delays.append(after.seconds)
            case let .failed(error): outcomes.append("failed"); details.append(error); delays.append(0)
            case let .release(reason): outcomes.append("release"); details.append(reason); delays.append(0)
            }
        }
        let rows = try await client.query("""
            WITH input AS (
                SELECT * FROM unnest(\(ids)::int8[], \(attempts)::int4[], \(outcomes)::text[], \(details)::text[], \(delays)::float8[])
                    AS t(id, attempt, outcome, detail, delay_s)),
            done AS (
                UPDATE payment_jobs j SET
                    state = CASE i.outcome WHEN 'succeeded' THEN 'succeeded' WHEN 'failed' THEN 'failed' ELSE 'queued' END,
                    finished_at = CASE WHEN i.outcome IN ('succeeded', 'failed') THEN now() END,
                    run_at = CASE i.outcome WHEN 'retry' THEN now() + make_interval(secs => i.delay_s)
                                            WHEN 'release' THEN now() ELSE j.run_at END,
                    attempt = CASE WHEN i.outcome = 'release' THEN j.attempt - 1 ELSE j.attempt END,
                    charge_id = CASE WHEN i.outcome = 'succeeded' THEN i.detail END,
                    last_error = CASE WHEN i.outcome = 'succeeded' THEN j.last_error ELSE i.detail END,
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
                FROM input i
                WHERE j.id = i.id AND j.state = 'running' AND j.lease_owner = \(owner) AND j.attempt = i.attempt
                RETURNING j.id, j.state, j.amount_minor, j.currency, j.debtor, j.creditor, j.attempt, j.created_at, j.finished_at),
            posted AS (
                INSERT INTO ledger_entries (job_id, side, account, amount_minor, currency, attempt)
                SELECT d.id, s.side,
                       CASE s.side WHEN 'debit' THEN d.debtor ELSE d.creditor END,
                       CASE s.side WHEN 'debit' THEN -d.amount_minor ELSE d.amount_minor END,
                       d.currency, d.attempt
                FROM done d CROSS JOIN (VALUES ('debit'), ('credit')) AS s(side)
                WHERE d.state = 'succeeded'
                RETURNING 1)
            SELECT d.id, d.state, EXTRACT(EPOCH FROM d.finished_at - d.created_at)::float8 FROM done d
            """, logger: logger)
        var completed: [CompletedJob] = []
        for try await (id, state, latency) in rows.decode((Int64, String, Double?).self) {
            completed.append(CompletedJob(id: id, state: state, latencySeconds: latency))
        }
        return completed
    }

    /// Extends the leases of jobs this owner still holds; returns how many it still holds.
    public func extendLeases(ids: [Int64], owner: String, lease: Duration) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        let rows = try await client.query("""
            WITH extended AS (
                UPDATE payment_jobs SET lease_expires_at = now() + make_interval(secs => \(lease.seconds))
                WHERE id = ANY(\(ids)::int8[]) AND state = 'running' AND lease_owner = \(owner)
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
                WHERE state = 'running' AND lease_expires_at < now()
                ORDER BY lease_expires_at
                LIMIT \(Int64(limit))
                FOR UPDATE SKIP LOCKED),
            requeued AS (
                UPDATE payment_jobs j SET state = 'queued', run_at = now(), updated_at = now(),
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
