import PostgresNIO

/// Every status read, together, each a whole statement. Each routed statement starts its
/// select list with `payment_read_node()`'s columns (migration 0018), the answering node's
/// identity, lag and freshness, evaluated in the same statement as the read, so they
/// describe the node that answered it.
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
        SELECT n.*, c.*
        FROM payment_read_node() n CROSS JOIN (
            SELECT s.state, COALESCE(q.n, t.n, 0)::int8 AS jobs,
                   (SELECT count(*) FROM payment_history WHERE finished_at > now() - interval '60 seconds')::int8 AS last_minute
            FROM unnest(\(JobState.allCases)::text[]) AS s(state)
            LEFT JOIN (SELECT state, count(*) AS n FROM payment_queue GROUP BY state) q ON q.state = s.state
            LEFT JOIN (SELECT split_part(state, ':', 1) AS state, sum(jobs) AS n FROM payment_history_totals GROUP BY 1) t ON t.state = s.state
            UNION ALL
            SELECT 'held', (SELECT count(*) FROM payment_queue WHERE held_reason IS NOT NULL)::int8, NULL::int8
            UNION ALL
            SELECT state, sum(jobs)::int8, NULL::int8 FROM payment_history_totals WHERE state LIKE 'failed:%' GROUP BY state) c
        """
    }

    /// The first reconciling payments held for an operator, with why and since when; a
    /// row even when none is held (its columns NULL).
    static func heldPayments(limit: Int) -> PostgresQuery {
        """
        SELECT n.*, q.id, q.held_reason, to_char(q.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), q.last_error
        FROM payment_read_node() n
        LEFT JOIN LATERAL (SELECT id, held_reason, updated_at, last_error FROM payment_queue
                           WHERE held_reason IS NOT NULL ORDER BY id LIMIT \(Int64(limit))) q ON true
        """
    }

    /// The processes holding running jobs now, with how many each holds: the serves at
    /// work (`lease_owner` is host/pid/tag). Only open jobs are in the queue, so the cost
    /// follows the backlog, not history. A row even when none runs (owner NULL).
    static func leaseOwners() -> PostgresQuery {
        """
        SELECT n.*, o.owner, o.n
        FROM payment_read_node() n
        LEFT JOIN LATERAL (SELECT lease_owner AS owner, count(*)::int8 AS n FROM payment_queue
                           WHERE state = \(JobState.running) GROUP BY lease_owner) o ON true
        """
    }

    /// The node's identity and its clock (Unix seconds): through the read path, or on the
    /// primary through pgbouncer-write.
    static let nodeClock: PostgresQuery = "SELECT n.*, EXTRACT(EPOCH FROM clock_timestamp())::float8 FROM payment_read_node() n"

    /// Only the node's identity: what `payments status` asks to see which nodes serve.
    static let nodeIdentity: PostgresQuery = "SELECT * FROM payment_read_node()"

    /// The primary's view of its replicas (through pgbouncer-write, never routed).
    static let replication: PostgresQuery = """
        SELECT application_name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8,
               EXTRACT(EPOCH FROM replay_lag)::float8
        FROM pg_stat_replication ORDER BY application_name
        """
}

/// The columns `ReadRouter` reads first from every routed statement: those of
/// `payment_read_node()` (migration 0018), as `payment_status_batch` returns them too.
enum ReadNode {
    static let columnCount = 4
}
