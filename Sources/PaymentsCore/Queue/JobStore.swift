import Foundation
import Logging
import PostgresNIO

/// Every statement of the worker's queue, together: claim, complete, extend leases, reap.
/// Each is one statement through pgbouncer-write with unnamed statements only, so it is
/// safe under transaction pooling. The two on every payment's path, the claim and the
/// completion, are functions (migration 0022): one round trip each, planned once per
/// server connection.
public struct JobStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    /// How long the server lets each worker statement run (SET LOCAL, per transaction:
    /// safe through transaction pooling). The claim and completion functions cannot set
    /// it for themselves: each bounds its lock waits by it and refuses to commit past it
    /// (migration 0022). The client waits as long and a second, counted from before it
    /// waits for a connection; when a claim or completion its client gave up on can still
    /// commit, and why that is safe: docs/processing.md, step 6.
    public let statementTimeout: Duration

    public init(client: PostgresClient, statementTimeout: Duration = .seconds(15), logger: Logger) {
        self.client = client
        self.statementTimeout = statementTimeout
        self.logger = logger
    }

    /// How the planner may run a statement, set for its transaction only (`SET LOCAL`
    /// through set_config: safe through transaction pooling), or, for the claim and
    /// completion functions, as their SET clauses (their tests check they match these).
    enum PlannerSettings {
        /// The server's.
        case standard
        /// For statements that join a batch (a bound array of ids) to the queue, the
        /// completion (`payment_complete`) among them: no nested
        /// loops, no sequential scans, no JIT. The queue changes faster than ANALYZE sees,
        /// and on statistics that said "no job is running" the planner joined every queue
        /// row with every batch row (seen: 0.6-7 s per 1,000 completions instead of
        /// ~50 ms). Such statements also filter `id = ANY(<the batch's ids>)`, so with
        /// sequential scans off the queue is read through its primary key, never scanned,
        /// however long the backlog (on the same stale statistics the planner chose to scan
        /// it). JIT is off too (migration 0008 sets it for the role; the disabled paths'
        /// cost would otherwise trigger it).
        case batchJoinByPrimaryKey
        /// For the claim (`payment_claim`): the claimable index, read in its order and left
        /// at the LIMIT (no sequential or bitmap scans, no sort), and the rows it picked
        /// joined back by primary key one by one (no hash or merge join). The queue is mostly
        /// empty pages around few live rows, and its bloated partial index looked dearer to
        /// the planner than scanning the table: after an ANALYZE, every claim read every page
        /// of the queue and sorted what it found (2,147 buffers and 16 ms a claim at 1,300
        /// payments/s on 2026-12-06, against ~150 buffers through the index). The join: the
        /// function's generic plan cannot see the LIMIT, guesses a tenth of the due rows,
        /// and against a large backlog could prefer reading the whole primary key to hash it.
        case claimInIndexOrder

        /// The planner settings it turns off for its transaction.
        var disabled: [String] {
            switch self {
            case .standard: []
            case .batchJoinByPrimaryKey: ["enable_nestloop", "enable_seqscan", "jit"]
            case .claimInIndexOrder: ["enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_hashjoin", "enable_mergejoin", "jit"]
            }
        }
    }

    /// The statement timeout and `planner`'s settings for one transaction, in one round trip.
    static func transactionSettings(_ planner: PlannerSettings, timeout: Duration) -> PostgresQuery {
        var binds = PostgresBindings()
        binds.append("\(milliseconds(timeout))ms")
        // The names are this file's own constants, never input.
        let off = planner.disabled.map { ", set_config('\($0)', 'off', true)" }.joined()
        return PostgresQuery(unsafeSQL: "SELECT set_config('statement_timeout', $1, true)" + off, binds: binds)
    }

    /// Runs `statement` in its own transaction under the server-side statement timeout,
    /// with `planner`'s settings.
    func inTransaction<T: Sendable>(_ statement: PostgresQuery, planner: PlannerSettings = .standard,
                                    _ decode: @escaping @Sendable (PostgresRowSequence) async throws -> T) async throws -> T {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query(Self.transactionSettings(planner, timeout: statementTimeout), logger: logger)
            return try await decode(try await connection.query(statement, logger: logger))
        }
    }

    // MARK: claim

    /// A timeout in whole milliseconds, at least one (0 would mean none to PostgreSQL).
    static func milliseconds(_ timeout: Duration) -> Int32 { Int32(clamping: max(1, Int(timeout.seconds * 1000))) }

    /// The bound the claim and the completion functions put on themselves (migration 0022:
    /// a call cannot set its own statement timeout), in milliseconds.
    var timeoutMilliseconds: Int32 { Self.milliseconds(statementTimeout) }

    /// Claims up to `limit` due jobs: `payment_claim` (migration 0022), one statement in one
    /// round trip, planned once per server connection under the claim's planner settings
    /// (`PlannerSettings.claimInIndexOrder`, the function's SET clauses), bounded by
    /// `timeoutMilliseconds`.
    static func claimStatement(limit: Int, owner: String, lease: Duration, timeoutMilliseconds: Int32) -> PostgresQuery {
        "SELECT * FROM payment_claim(\(Int32(clamping: limit)), \(owner), \(lease.seconds), \(timeoutMilliseconds))"
    }

    /// The lease end the jobs carry is on this process's clock, counted from before the
    /// claim was sent, never the database's: the gateway checks a charge's deadline against
    /// its own clock, and a database node whose clock runs ahead (a failover target) must
    /// not push a deadline past the lease.
    public func claim(limit: Int, owner: String, lease: Duration) async throws -> [ClaimedJob] {
        let leaseEnd = Date() + lease.seconds
        let rows = try await client.query(Self.claimStatement(limit: limit, owner: owner, lease: lease,
                                                               timeoutMilliseconds: timeoutMilliseconds), logger: logger)
        return try await Self.claimedJobs(rows, leaseEnd: leaseEnd)
    }

    /// Decodes what a claim (or the reconciler's take) returns: the payment, its attempt
    /// and claim (the fence), the end of its retry budget (set at intake; an hour from
    /// creation for payments queued before budgets existed), whether a cancel was asked,
    /// and how long it had been due.
    static func claimedJobs(_ rows: PostgresRowSequence, leaseEnd: Date) async throws -> [ClaimedJob] {
        var jobs: [ClaimedJob] = []
        for try await (id, key, amount, currency, debtor, creditor, attempt, maxAttempts, giveUpAt, cancelRequested, claim, waited)
            in rows.decode((Int64, String, Int64, String, String, String, Int32, Int32, Date, Bool, Int64, Double).self) {
            jobs.append(ClaimedJob(id: id, idempotencyKey: key,
                                   payment: Payment(amountMinor: amount, currency: currency, debtor: debtor, creditor: creditor),
                                   attempt: attempt, maxAttempts: maxAttempts, leaseExpiresAt: leaseEnd,
                                   giveUpAt: giveUpAt, cancelRequested: cancelRequested, claim: claim, waitedSeconds: waited))
        }
        return jobs
    }

    /// The reconciler's take: the claimed columns, then whether the payment was adopted.
    static func reconcilingJobs(_ rows: PostgresRowSequence) async throws -> [ClaimedJob] {
        var jobs: [ClaimedJob] = []
        for try await (id, key, amount, currency, debtor, creditor, attempt, maxAttempts, giveUpAt, cancelRequested, claim, waited, adopted)
            in rows.decode((Int64, String, Int64, String, String, String, Int32, Int32, Date, Bool, Int64, Double, Bool).self) {
            // The reconciler sends no charge: these jobs have no lease.
            jobs.append(ClaimedJob(id: id, idempotencyKey: key,
                                   payment: Payment(amountMinor: amount, currency: currency, debtor: debtor, creditor: creditor),
                                   attempt: attempt, maxAttempts: maxAttempts, leaseExpiresAt: .distantPast,
                                   giveUpAt: giveUpAt, cancelRequested: cancelRequested, claim: claim, waitedSeconds: waited,
                                   adopted: adopted))
        }
        return jobs
    }

    // MARK: complete

    /// Whose outcome may be recorded: the worker holding the lease, or the reconciler.
    public enum Fence: Sendable, Equatable {
        /// Still `running` under this owner and the completion's claim.
        case lease(owner: String)
        /// Still `reconciling` under the completion's claim (each reconciler's take raises
        /// it): a reconciler whose answer came late, after another took the job, changes
        /// nothing.
        case reconciling
    }

    /// Records a batch of outcomes in one statement, fenced: `payment_complete` (migration
    /// 0022 says what it does to each row), one round trip, planned once per server
    /// connection under `PlannerSettings.batchJoinByPrimaryKey` (its SET clauses). A row
    /// changes only if it is still `running` under this owner and claim (or `reconciling`),
    /// so a worker that lost its lease changes nothing; a final outcome moves the job to
    /// payment_history with its ledger entries (the ledger's primary key refuses a second
    /// posting). Returns each recorded job with its outcome, and as `locked` each job whose
    /// row another session held locked past the call's wait of a second (migration 0023:
    /// nothing written for it); a fenced-off completion is simply absent.
    static func completeStatement(_ completions: [Completion], fence: Fence, margin: Duration, timeoutMilliseconds: Int32) -> PostgresQuery {
        var ids: [Int64] = [], claims: [Int64] = [], outcomes: [Completion.Outcome] = [], states: [JobState] = []
        var chargeIDs: [String] = [], errors: [String] = [], delays: [Double] = [], refunds: [Int32] = []
        var failures: [String] = [], holds: [String] = []
        var finishedIDs: [Int64] = [], keptIDs: [Int64] = []
        for c in completions {
            let r = c.resolution
            if r.nextState.isTerminal { finishedIDs.append(c.jobID) } else { keptIDs.append(c.jobID) }
            ids.append(c.jobID)
            claims.append(c.claim)
            outcomes.append(r.outcome)
            states.append(r.nextState)
            // Arrays cannot bind NULL elements: "" stands for none.
            chargeIDs.append(r.chargeID ?? "")
            errors.append(r.error ?? "")
            delays.append(r.delay.seconds)
            refunds.append(r.refundsAttempt ? 1 : 0)
            failures.append(r.failureReason?.rawValue ?? "")
            holds.append(r.heldReason?.rawValue ?? "")
        }
        let (fencedState, owner): (JobState, String?) = switch fence {
        case let .lease(owner): (.running, owner)
        case .reconciling: (.reconciling, nil)
        }
        return """
            SELECT * FROM payment_complete(\(ids)::int8[], \(claims)::int8[], \(outcomes)::text[], \(states)::text[],
                                           \(chargeIDs)::text[], \(errors)::text[], \(delays)::float8[], \(refunds)::int4[],
                                           \(failures)::text[], \(holds)::text[], \(finishedIDs)::int8[], \(keptIDs)::int8[],
                                           \(fencedState)::text, \(owner)::text, \(margin.seconds), \(timeoutMilliseconds))
            """
    }

    /// - Parameter margin: after the last request's deadline, before "no charge" is trusted.
    public func complete(_ completions: [Completion], fence: Fence, margin: Duration) async throws -> CompletionWrite {
        guard !completions.isEmpty else { return CompletionWrite() }
        let rows = try await client.query(Self.completeStatement(completions, fence: fence, margin: margin,
                                                                 timeoutMilliseconds: timeoutMilliseconds), logger: logger)
        var write = CompletionWrite()
        for try await (id, outcome, latency, failure) in rows.decode((Int64, String, Double?, FailureReason?).self) {
            if outcome == Self.lockedElsewhere {
                write.locked.append(id)
            } else if let outcome = Completion.Outcome(rawValue: outcome) {
                write.recorded.append(CompletedJob(id: id, outcome: outcome, latencySeconds: latency, failureReason: failure))
            } else {
                throw PaymentsError.database("payment_complete returned the outcome '\(outcome)' for job \(id), unknown to this binary: the schema is newer; run the binary that migrated it")
            }
        }
        return write
    }

    /// `payment_complete`'s outcome for a row another session held locked (migration 0023).
    static let lockedElsewhere = "locked"

    // MARK: leases

    /// Extends the leases of the (job, claim) pairs this owner still holds, but not past
    /// `maxHold` from their claim: a job whose worker is stuck (a gateway call that never
    /// returns) is let go and reaped rather than renewed forever. Returns those extended.
    public func extendLeases(_ held: [HeldJobs.Key], owner: String, lease: Duration, maxHold: Duration) async throws -> [HeldJobs.Key] {
        guard !held.isEmpty else { return [] }
        // SKIP LOCKED: a row locked right now is having its outcome recorded; waiting for
        // it (in another order than the completion's) could deadlock the two.
        return try await inTransaction("""
            WITH mine AS (
                SELECT j.id FROM payment_queue j
                JOIN unnest(\(held.map(\.id))::int8[], \(held.map(\.claim))::int8[]) AS h(id, claim)
                  ON j.id = h.id AND j.claim_seq = h.claim
                -- By primary key, hashed against the batch (`PlannerSettings.batchJoinByPrimaryKey`).
                WHERE j.id = ANY(\(held.map(\.id))::int8[])
                  AND (j.state, j.lease_owner) IS NOT DISTINCT FROM (\(JobState.running), \(owner))
                  AND j.claimed_at > now() - make_interval(secs => \(maxHold.seconds))
                FOR UPDATE OF j SKIP LOCKED),
            extended AS (
                UPDATE payment_queue j SET lease_expires_at = now() + make_interval(secs => \(lease.seconds))
                FROM mine WHERE j.id = ANY(\(held.map(\.id))::int8[]) AND j.id = mine.id
                RETURNING j.id, j.claim_seq)
            SELECT id, claim_seq FROM extended
            """, planner: .batchJoinByPrimaryKey) { rows in
            var extended: [HeldJobs.Key] = []
            for try await (id, claim) in rows.decode((Int64, Int64).self) { extended.append(HeldJobs.Key(id: id, claim: claim)) }
            return extended
        }
    }

    /// Releases jobs the database says this owner runs but the process does not hold: a
    /// claim that committed after its client gave up on it (timeout, dropped connection).
    /// The caller runs it between its own claims, so every claim it received is in `held`
    /// (or `unrecorded`) and any other running job of this owner was never received: no
    /// request for it left under this claim. So the attempt is refunded and no lease loss
    /// counted, and it is released at once rather than after its lease (when the reaper
    /// would take it, costing both). `unrecorded` are jobs whose outcome this process
    /// could not record: they are left to the reaper, which counts the lost lease, so a
    /// completion the database keeps refusing ends in `reconciling` instead of a loop.
    /// A job whose cancel was asked goes to `reconciling` (an earlier attempt may have
    /// been sent), settled `margin` after its last request's deadline.
    public func releaseOrphans(held: [HeldJobs.Key], owner: String, olderThan: Duration, margin: Duration) async throws -> Int {
        try await inTransaction("""
            WITH candidates AS (
                SELECT j.id FROM payment_queue j
                WHERE j.state = \(JobState.running) AND j.lease_owner = \(owner)
                  AND j.claimed_at < now() - make_interval(secs => \(olderThan.seconds))
                  AND (j.id, j.claim_seq) NOT IN (SELECT * FROM unnest(\(held.map(\.id))::int8[], \(held.map(\.claim))::int8[]))
                FOR UPDATE OF j SKIP LOCKED),
            orphans AS (
                UPDATE payment_queue j SET
                    attempt = j.attempt - 1,
                    state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN \(JobState.reconciling) ELSE \(JobState.queued) END,
                    run_at = CASE WHEN j.cancel_requested_at IS NOT NULL
                                  THEN greatest(now(), j.charge_deadline_at) + make_interval(secs => \(margin.seconds)) ELSE now() END,
                    updated_at = now(), lease_owner = NULL, lease_expires_at = NULL,
                    last_error = 'released: claimed by ' || j.lease_owner || ' but never received by it'
                FROM candidates c WHERE j.id = c.id
                RETURNING 1)
            SELECT count(*)::int8 FROM orphans
            """) { rows in
            for try await (count) in rows.decode(Int64.self) { return Int(count) }
            return 0
        }
    }

    /// Returns expired `running` jobs to the queue, counting the lost lease; a job that
    /// lost `maxLeaseLosses` leases goes to `reconciling` instead (its charge may have
    /// happened under any of them), settled after `settleAfter`. Safe from every worker
    /// at once.
    public func reapExpiredLeases(limit: Int = 1_000, maxLeaseLosses: Int, settleAfter: Duration) async throws -> Int {
        try await inTransaction(Self.reapStatement(limit: limit, maxLeaseLosses: maxLeaseLosses, settleAfter: settleAfter)) { rows in
            for try await (count) in rows.decode(Int64.self) { return Int(count) }
            return 0
        }
    }

    /// The reaper's statement: how many expired leases it took.
    static func reapStatement(limit: Int, maxLeaseLosses: Int, settleAfter: Duration) -> PostgresQuery {
        """
            WITH expired AS (
                SELECT id FROM payment_queue
                WHERE state = \(JobState.running) AND lease_expires_at < now()
                ORDER BY lease_expires_at
                LIMIT \(Int64(limit))
                FOR UPDATE SKIP LOCKED),
            requeued AS (
                UPDATE payment_queue j SET
                    lease_losses = j.lease_losses + 1,
                    -- A job whose cancel was asked is not sent again: the reconciler settles it.
                    state = CASE WHEN j.lease_losses + 1 >= \(Int32(maxLeaseLosses)) OR j.cancel_requested_at IS NOT NULL
                                 THEN \(JobState.reconciling) ELSE \(JobState.queued) END,
                    run_at = CASE WHEN j.lease_losses + 1 >= \(Int32(maxLeaseLosses)) OR j.cancel_requested_at IS NOT NULL
                                  THEN greatest(now(), j.charge_deadline_at) + make_interval(secs => \(settleAfter.seconds)) ELSE now() END,
                    updated_at = now(),
                    last_error = 'lease of ' || j.lease_owner || ' expired: worker stopped or lost the database'
                        || CASE WHEN j.lease_losses + 1 >= \(Int32(maxLeaseLosses))
                                THEN ' (' || (j.lease_losses + 1) || ' leases lost: reconciling with the gateway)' ELSE '' END,
                    lease_owner = NULL, lease_expires_at = NULL
                FROM expired WHERE j.id = expired.id
                RETURNING 1)
            SELECT count(*)::int8 FROM requeued
            """
    }

    // MARK: reconciliation

    /// Takes up to `limit` `reconciling` jobs that are due, pushing their next look
    /// `recheckAfter` ahead so other reconcilers pass them by meanwhile.
    /// Only jobs whose every request's deadline is `margin` past: the gateway's "no charge"
    /// is final for them, whichever path sent them here. Each take raises the claim, the
    /// fence of its outcome.
    public func claimReconciling(limit: Int, recheckAfter: Duration, margin: Duration) async throws -> [ClaimedJob] {
        try await inTransaction("""
            WITH picked AS (
                SELECT id FROM payment_queue
                WHERE state = \(JobState.reconciling) AND run_at <= now()
                  AND (charge_deadline_at IS NULL OR charge_deadline_at <= now() - make_interval(secs => \(margin.seconds)))
                ORDER BY run_at
                LIMIT \(Int64(limit))
                FOR UPDATE SKIP LOCKED)
            UPDATE payment_queue j SET run_at = now() + make_interval(secs => \(recheckAfter.seconds)), updated_at = now(),
                                       claim_seq = j.claim_seq + 1
            FROM picked WHERE j.id = picked.id
            RETURNING j.id, j.idempotency_key, j.amount_minor, j.currency::text, j.debtor, j.creditor, j.attempt, j.max_attempts,
                      COALESCE(j.give_up_at, j.created_at + interval '1 hour'), j.cancel_requested_at IS NOT NULL, j.claim_seq,
                      greatest(EXTRACT(EPOCH FROM now() - j.run_at), 0)::float8,
                      j.request_fingerprint LIKE '%|*'
            """) { rows in
            try await Self.reconcilingJobs(rows)
        }
    }

    // MARK: an operator's way out of a held payment

    /// A payment held for an operator: its key and payment, and why.
    public func heldPayment(_ id: Int64) async throws -> (key: String, payment: Payment, reason: HeldReason)? {
        try await inTransaction("""
            SELECT idempotency_key, amount_minor, currency::text, debtor, creditor, held_reason
            FROM payment_queue WHERE id = \(id) AND state = \(JobState.reconciling) AND held_reason IS NOT NULL
            """) { rows in
            for try await (key, amount, currency, debtor, creditor, reason) in rows.decode((String, Int64, String, String, String, HeldReason).self) {
                return (key, Payment(amountMinor: amount, currency: currency, debtor: debtor, creditor: creditor), reason)
            }
            return nil
        }
    }

    /// How an operator settles a held payment.
    public enum HeldResolution: String, Sendable {
        /// The provider refunded the charge that was not the payment's: it ends `cancelled`.
        case cancelled
        /// Back to the reconciler, asked again now (the provider corrected its record).
        case recheck
    }

    /// Settles held payment `id` (fenced on it still being held); returns its new state,
    /// nil if it was not held.
    public func resolveHeld(_ id: Int64, as resolution: HeldResolution, note: String) async throws -> JobState? {
        try await inTransaction("SELECT payment_resolve_held(\(id), \(resolution.rawValue), \(note))") { rows in
            for try await (state) in rows.decode(String?.self) { return state.flatMap(JobState.init(rawValue:)) }
            return nil
        }
    }

    // MARK: cancel

    /// What a cancel request did to one payment.
    public enum CancelOutcome: Sendable, Equatable {
        /// No request had ever left for it: cancelled now.
        case cancelled
        /// Its request may have reached the gateway: cancelled once the gateway proves no
        /// charge after every deadline, succeeded if it was charged.
        case pending
        /// Already finished in this state (a cancelled payment asked again answers so too).
        case finished(JobState)
    }

    /// Asks to cancel each payment (`payment_cancel`, migration 0012); an id that names no
    /// payment is absent from the answer. `settle`: how long after now no charge of an
    /// attempt that ended can land any more (the margin for clocks and in-flight writes).
    public func cancel(_ ids: [Int64], margin: Duration) async throws -> [Int64: CancelOutcome] {
        try await inTransaction("SELECT payment_id, outcome FROM payment_cancel(\(ids)::int8[], make_interval(secs => \(margin.seconds)))") { rows in
            var outcomes: [Int64: CancelOutcome] = [:]
            for try await (id, outcome) in rows.decode((Int64, String).self) {
                switch outcome {
                case "cancelled": outcomes[id] = .cancelled
                case "pending": outcomes[id] = .pending
                default: outcomes[id] = .finished(JobState(rawValue: outcome) ?? .failed)
                }
            }
            return outcomes
        }
    }

    // MARK: partitions

    /// The partitioned tables and the function that creates each one's partitions up to
    /// `ahead` ranges of ten million ids past the last id given (ids beyond them land in
    /// a default partition, where a read plans one more table and retention cannot
    /// detach them). Each runs in a transaction of its own: adding a partition takes its
    /// table's exclusive lock, and holding one table's while waiting for the other's
    /// could deadlock with a statement that reads both.
    /// The statement that creates each partitioned table's partitions up to `ahead` ranges
    /// of ten million ids past the last id given (ids beyond them land in a default
    /// partition, where a read plans one more table and retention cannot detach them).
    /// Each runs in a transaction of its own: adding a partition takes its table's
    /// exclusive lock, and holding one table's while waiting for the other's could
    /// deadlock with a statement that reads both.
    private static func partitionStatements(ahead: Int) -> [(table: String, statement: PostgresQuery)] {
        [
            ("payment_history", "SELECT payment_history_add_partitions(\(Int32(ahead)))::int8"),
            ("ledger_entries", "SELECT ledger_entries_add_partitions(\(Int32(ahead)))::int8"),
        ]
    }

    /// Creates the missing partitions of every partitioned table, one transaction per
    /// table, and logs what it created; returns how many, by table (only tables that got
    /// some). `serve` runs it every minute, `payments prune` before it prunes.
    @discardableResult
    public func addPartitions(ahead: Int) async throws -> [String: Int] {
        var created: [String: Int] = [:]
        for (table, statement) in Self.partitionStatements(ahead: ahead) {
            let n = try await inTransaction(statement) { rows in
                for try await (n) in rows.decode(Int64.self) { return Int(n) }
                return 0
            }
            if n > 0 {
                created[table] = n
                logger.info("created partitions", metadata: ["table": "\(table)", "partitions": "\(n)"])
            }
        }
        return created
    }
}
