import PostgresNIO

/// Every status read, together. Each routed statement starts its select list with
/// `\(readNode: token)`, the answering node's identity, lag and freshness, so they are
/// evaluated in the same statement as the read and describe the node that answered it.
enum ReadStatements {
    /// Jobs with their postings, wherever each is (queue, history, archive), by
    /// `payment_status_batch` (migration 0015): one row per id, in order, even for a job
    /// that does not exist (its columns NULL); each row with its own freshness (its token;
    /// none is sent as '') in the fourth column, the job's columns after the node's, and
    /// the item's position (from 1) last. Each job is read by a PL/pgSQL function whose
    /// plan PostgreSQL keeps per server connection (migration 0013), which survives
    /// transaction pooling, with the id bound, so the history's other partitions are pruned.
    static func jobs(ids: [Int64], freshAs tokens: [String?]) -> PostgresQuery {
        "SELECT * FROM payment_status_batch(\(ids)::int8[], \(tokens.map { $0 ?? "" })::text[])"
    }

    /// One row per state, with the jobs finished in the last minute on every row; then one
    /// row `held` (reconciling payments waiting for an operator) and one per failure reason
    /// (`failed:<reason>`, finished in the last minute 0). Open jobs are counted in the
    /// queue (only they are there); finished ones come from the history's running totals
    /// (kept by state and failure reason), so the cost does not grow with history.
    static func queueCounts() -> PostgresQuery {
        """
        SELECT \(readNode: nil), s.state, COALESCE(c.n, t.n, 0)::int8,
               (SELECT count(*) FROM payment_history WHERE finished_at > now() - interval '60 seconds')::int8
        FROM unnest(\(JobState.allCases)::text[]) AS s(state)
        LEFT JOIN (SELECT state, count(*) AS n FROM payment_queue GROUP BY state) c ON c.state = s.state
        LEFT JOIN (SELECT split_part(state, ':', 1) AS state, sum(jobs) AS n FROM payment_history_totals GROUP BY 1) t ON t.state = s.state
        UNION ALL
        SELECT \(readNode: nil), 'held', (SELECT count(*) FROM payment_queue WHERE held_reason IS NOT NULL)::int8, NULL::int8
        UNION ALL
        SELECT \(readNode: nil), state, sum(jobs)::int8, NULL::int8 FROM payment_history_totals WHERE state LIKE 'failed:%' GROUP BY state
        """
    }

    /// The first reconciling payments held for an operator, with why and since when.
    static func heldPayments(limit: Int) -> PostgresQuery {
        """
        SELECT \(readNode: nil), q.id, q.held_reason, \(unescaped: Job.iso8601("q.updated_at")), q.last_error
        FROM (SELECT 1) AS one
        LEFT JOIN LATERAL (SELECT id, held_reason, updated_at, last_error FROM payment_queue
                           WHERE held_reason IS NOT NULL ORDER BY id LIMIT \(Int64(limit))) q ON true
        """
    }

    /// The processes holding running jobs now, with how many each holds: the serves at
    /// work (`lease_owner` is host/pid/tag). Only open jobs are in the queue, so the cost
    /// follows the backlog, not history. A row even when none runs (owner NULL).
    static func leaseOwners() -> PostgresQuery {
        """
        SELECT \(readNode: nil), o.owner, o.n
        FROM (SELECT 1) AS one
        LEFT JOIN LATERAL (SELECT lease_owner AS owner, count(*)::int8 AS n FROM payment_queue
                           WHERE state = \(JobState.running) GROUP BY lease_owner) o ON true
        """
    }

    /// The node's identity and its clock (Unix seconds): through the read path, or on the
    /// primary through pgbouncer-write.
    static func nodeClock() -> PostgresQuery {
        "SELECT \(readNode: nil), EXTRACT(EPOCH FROM clock_timestamp())::float8"
    }

    /// Only the node's identity: what `payments status` asks to see which nodes serve.
    static func nodeIdentity() -> PostgresQuery {
        "SELECT \(readNode: nil)"
    }

    /// The primary's view of its replicas (through pgbouncer-write, never routed).
    static let replication: PostgresQuery = """
        SELECT application_name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8,
               EXTRACT(EPOCH FROM replay_lag)::float8
        FROM pg_stat_replication ORDER BY application_name
        """
}

/// The columns `ReadRouter` reads first from every routed statement.
enum ReadNode {
    static let columnCount = 4
}

extension PostgresQuery.StringInterpolation {
    /// The stored columns (`Job.storedColumns`) of the payment whose id is `column` of an
    /// outer row, wherever it lives (`Job.tables`); no row if none. Every history partition
    /// is planned: the hot read by id (`payment_status`, migration 0013) binds the id.
    mutating func appendInterpolation(paymentWithIDFrom column: String) {
        for (index, table) in Job.tables.enumerated() {
            appendLiteral("\(index == 0 ? "" : " UNION ALL ")SELECT \(Job.storedColumns) FROM \(table) WHERE id = \(column)")
        }
        appendLiteral(" LIMIT 1")
    }

    /// Is the node a replica, its name, its replay lag in seconds (0 when it has
    /// replayed all it received), and whether it has replayed `token` (a WAL position a
    /// write returned; always true on the primary or without a token).
    mutating func appendInterpolation(readNode token: String?) {
        appendLiteral("""
            pg_is_in_recovery(),
            COALESCE(NULLIF(current_setting('payments.node', true), ''), current_setting('cluster_name')),
            CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
                 WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0) END,
            CASE WHEN 
            """)
        appendInterpolation(token)
        appendLiteral("::text IS NULL OR NOT pg_is_in_recovery() THEN true ELSE pg_last_wal_replay_lsn() >= ")
        appendInterpolation(token)
        appendLiteral("::pg_lsn END")
    }
}
