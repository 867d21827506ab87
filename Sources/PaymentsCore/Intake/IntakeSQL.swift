import PostgresNIO

/// New payments as columns, bound as arrays for one `INSERT … SELECT * FROM unnest(…)`:
/// the one place the insert column list is written, used by the API (one row) and by
/// bulk enqueue (thousands).
struct PaymentRows {
    static let insertColumns = "idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor, priority, max_attempts"

    private var keys: [String] = []
    private var fingerprints: [String] = []
    private var amounts: [Int64] = []
    private var currencies: [String] = []
    private var debtors: [String] = []
    private var creditors: [String] = []
    private var priorities: [Int16] = []
    private var maxAttempts: [Int32] = []

    init(_ payments: some Collection<NewPayment>) {
        keys.reserveCapacity(payments.count)
        for new in payments {
            let request = new.request
            keys.append(new.idempotencyKey)
            fingerprints.append(request.fingerprint)
            amounts.append(request.payment.amountMinor)
            currencies.append(request.payment.currency)
            debtors.append(request.payment.debtor)
            creditors.append(request.payment.creditor)
            priorities.append(request.priority)
            maxAttempts.append(request.maxAttempts)
        }
    }

    /// `SELECT * FROM unnest(…) AS t(<insertColumns>)`: the rows as a relation.
    var relation: PostgresQuery {
        """
        SELECT * FROM unnest(\(keys)::text[], \(fingerprints)::text[], \(amounts)::int8[], \(currencies)::text[],
                             \(debtors)::text[], \(creditors)::text[], \(priorities)::int2[], \(maxAttempts)::int4[])
            AS t(\(unescaped: Self.insertColumns))
        """
    }
}

/// Every statement that takes payments in. A key names one payment for ever: the queue's
/// unique index covers live jobs, and every insert also skips keys whose payment
/// `payments prune` moved to the archive. The inserts wrap `PaymentRows.relation` (whose
/// binds they keep) and add no binds of their own.
enum IntakeSQL {
    /// The rows whose keys are not archived.
    private static func unarchived(_ relation: String) -> String {
        """
        SELECT * FROM (\(relation)) r
        WHERE NOT EXISTS (SELECT 1 FROM payment_jobs_archive a WHERE a.idempotency_key = r.idempotency_key)
        """
    }

    /// Inserts new keys, skips existing (live or archived) ones; returns how many rows were new.
    static func insertCountingNew(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            """
            WITH ins AS (
                INSERT INTO payment_jobs (\(PaymentRows.insertColumns))
                \(unarchived(relation))
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING 1)
            SELECT count(*)::int8 FROM ins
            """
        }
    }

    /// After inserting a file's rows, in the same transaction and so in a newer snapshot
    /// than the insert (READ COMMITTED): its keys that now belong to another payment,
    /// live or archived, including rows other writers committed while the insert waited
    /// on them; and its keys present both live and archived (prune moved the old payment
    /// while this insert waited for it). Either refuses the whole file.
    static func conflicts(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            """
            WITH input AS (\(relation))
            SELECT i.idempotency_key, f.live AND f.archived AS twice
            FROM input i CROSS JOIN LATERAL (
                SELECT EXISTS (SELECT 1 FROM payment_jobs p WHERE p.idempotency_key = i.idempotency_key) AS live,
                       EXISTS (SELECT 1 FROM payment_jobs_archive a WHERE a.idempotency_key = i.idempotency_key) AS archived,
                       EXISTS (SELECT 1 FROM payment_jobs p
                               WHERE p.idempotency_key = i.idempotency_key AND p.request_fingerprint <> i.request_fingerprint)
                       OR EXISTS (SELECT 1 FROM payment_jobs_archive a
                                  WHERE a.idempotency_key = i.idempotency_key AND a.request_fingerprint <> i.request_fingerprint)
                          AS other_payment) f
            WHERE f.other_payment OR (f.live AND f.archived)
            """
        }
    }

    /// Inserts and returns the new jobs (`Job.columns`); an existing key returns nothing.
    static func insertReturningJobs(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            """
            INSERT INTO payment_jobs AS j (\(PaymentRows.insertColumns))
            \(unarchived(relation))
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING \(Job.columns)
            """
        }
    }

    /// Whether the archive holds a key (after an insert, in its transaction).
    static func archived(idempotencyKey: String) -> PostgresQuery {
        "SELECT EXISTS (SELECT 1 FROM payment_jobs_archive WHERE idempotency_key = \(idempotencyKey))"
    }

    /// The job holding a key, live or archived, with the fingerprint of the request that
    /// created it.
    static func lookup(idempotencyKey: String) -> PostgresQuery {
        """
        SELECT j.request_fingerprint, \(unescaped: Job.columns)
        FROM (SELECT 0 AS source, request_fingerprint, \(unescaped: Job.storedColumns) FROM payment_jobs
              WHERE idempotency_key = \(idempotencyKey)
              UNION ALL
              SELECT 1, request_fingerprint, \(unescaped: Job.storedColumns) FROM payment_jobs_archive
              WHERE idempotency_key = \(idempotencyKey)
              ORDER BY source LIMIT 1) j
        """
    }

    /// The primary's WAL position: after a commit, a replica that has replayed past it has the commit.
    static let currentLSN: PostgresQuery = "SELECT pg_current_wal_lsn()::text"

    private static func wrapping(_ inner: PostgresQuery, _ sql: (String) -> String) -> PostgresQuery {
        var query = inner
        query.sql = sql(inner.sql)
        return query
    }
}
