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

/// Every statement that takes payments in. Each wraps `PaymentRows.relation` (whose
/// binds it keeps) and adds no binds of its own, except `lookup`.
enum IntakeSQL {
    /// Inserts new keys, skips existing ones; returns how many rows were new.
    static func insertCountingNew(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            """
            WITH ins AS (
                INSERT INTO payment_jobs (\(PaymentRows.insertColumns))
                \(relation)
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING 1)
            SELECT count(*)::int8 FROM ins
            """
        }
    }

    /// Like `insertCountingNew`, and also returns the keys that already exist for a
    /// different payment (the join sees the rows as they were before this statement).
    static func insertCheckingConflicts(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            """
            WITH input AS (\(relation)),
            ins AS (
                INSERT INTO payment_jobs (\(PaymentRows.insertColumns))
                SELECT * FROM input
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING 1)
            SELECT (SELECT count(*) FROM ins)::int8,
                   COALESCE((SELECT array_agg(i.idempotency_key) FROM input i
                             JOIN payment_jobs p USING (idempotency_key)
                             WHERE p.request_fingerprint <> i.request_fingerprint), '{}')::text[]
            """
        }
    }

    /// Inserts and returns the new jobs (`Job.columns`); an existing key returns nothing.
    static func insertReturningJobs(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            """
            INSERT INTO payment_jobs AS j (\(PaymentRows.insertColumns))
            \(relation)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING \(Job.columns)
            """
        }
    }

    /// The job holding a key, with the fingerprint of the request that created it.
    static func lookup(idempotencyKey: String) -> PostgresQuery {
        "SELECT j.request_fingerprint, \(unescaped: Job.columns) FROM payment_jobs j WHERE j.idempotency_key = \(idempotencyKey)"
    }

    /// The primary's WAL position: after a commit, a replica that has replayed past it has the commit.
    static let currentLSN: PostgresQuery = "SELECT pg_current_wal_lsn()::text"

    private static func wrapping(_ inner: PostgresQuery, _ sql: (String) -> String) -> PostgresQuery {
        var query = inner
        query.sql = sql(inner.sql)
        return query
    }
}
