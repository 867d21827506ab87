import PostgresNIO

/// New payments as columns, bound as arrays for one `INSERT … SELECT … FROM unnest(…)`:
/// the API binds one row, bulk enqueue thousands.
struct PaymentRows {
    fileprivate(set) var keys: [String] = []
    fileprivate(set) var fingerprints: [String] = []
    fileprivate(set) var amounts: [Int64] = []
    fileprivate(set) var currencies: [String] = []
    fileprivate(set) var debtors: [String] = []
    fileprivate(set) var creditors: [String] = []
    fileprivate(set) var priorities: [Int16] = []
    fileprivate(set) var maxAttempts: [Int32] = []
    /// Each payment's retry budget in seconds (its own, or the intake's default); the
    /// insert turns it into `give_up_at`.
    fileprivate(set) var budgets: [Int32] = []

    /// - Parameter distinctKeys: keep only the first row of each key (what the inserts
    ///   need; a later row with the key is a duplicate, or a conflict that
    ///   `IntakeSQL.conflicts` on all the rows reports).
    init(_ payments: some Collection<NewPayment>, distinctKeys: Bool = false, budgetSeconds: Int32 = PaymentRequest.defaultGiveUpAfterSeconds) {
        keys.reserveCapacity(payments.count)
        var seen = Set<String>()
        for new in payments {
            if distinctKeys { guard seen.insert(new.idempotencyKey).inserted else { continue } }
            let request = new.request
            keys.append(new.idempotencyKey)
            fingerprints.append(request.fingerprint)
            amounts.append(request.payment.amountMinor)
            currencies.append(request.payment.currency)
            debtors.append(request.payment.debtor)
            creditors.append(request.payment.creditor)
            priorities.append(request.priority)
            maxAttempts.append(request.maxAttempts)
            budgets.append(request.giveUpAfterSeconds ?? budgetSeconds)
        }
    }
}

/// Every statement that takes payments in, each whole. A key names one payment for ever:
/// payment_keys, which only grows, holds every key with its payment's id, whether the
/// payment is queued, finished or archived. The key and the queued job are inserted in
/// one statement, so a job exists exactly when its key does.
///
/// The inserts take the rows' new keys (one id each) and queue their jobs; a key already
/// taken inserts nothing. The rows' keys must be distinct (`PaymentRows(distinctKeys:)`):
/// without a sort to find repeats, the statement stays a hash join. Rows whose currency
/// the catalog lacks are left out (one hash join of the catalog, not a foreign-key check
/// per row: migration 0007). The jobs' timestamps leave as ISO 8601 text, UTC,
/// microseconds, in the order `Job.decode` reads them.
enum IntakeSQL {
    /// Bulk enqueue: inserts new keys, skips existing ones; returns how many rows were new
    /// and how many name a currency the catalog lacks (the caller rolls back if any).
    /// `rows` is inlined where it is used (NOT MATERIALIZED): each use is a scan of the
    /// bound arrays, as cheap as a materialised copy and planned with the join.
    static func insertCountingNew(_ rows: PaymentRows) -> PostgresQuery {
        """
        WITH rows AS NOT MATERIALIZED (
            SELECT * FROM unnest(\(rows.keys)::text[], \(rows.fingerprints)::text[], \(rows.amounts)::int8[], \(rows.currencies)::text[],
                                 \(rows.debtors)::text[], \(rows.creditors)::text[], \(rows.priorities)::int2[], \(rows.maxAttempts)::int4[],
                                 \(rows.budgets)::int4[])
                AS t(idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor, priority, max_attempts, give_up_after_s)),
        input AS (
            SELECT r.* FROM rows r JOIN currencies c ON c.code = r.currency),
        keyed AS (
            INSERT INTO payment_keys (idempotency_key, payment_id, request_fingerprint)
            SELECT idempotency_key, nextval('payment_ids'), request_fingerprint FROM input
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING idempotency_key, payment_id),
        queued AS (
            INSERT INTO payment_queue (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
                                       priority, max_attempts, give_up_at) OVERRIDING SYSTEM VALUE
            SELECT k.payment_id, i.idempotency_key, i.request_fingerprint, i.amount_minor, i.currency, i.debtor, i.creditor,
                   i.priority, i.max_attempts, now() + make_interval(secs => i.give_up_after_s)
            FROM keyed k JOIN input i ON i.idempotency_key = k.idempotency_key
            RETURNING 1)
        SELECT (SELECT count(*) FROM queued)::int8,
               (SELECT count(*) FROM rows r WHERE NOT EXISTS (SELECT 1 FROM currencies c WHERE c.code = r.currency))::int8
        """
    }

    /// After inserting a file's rows, in the same transaction and so in a newer snapshot
    /// than the insert (READ COMMITTED): its keys that belong to another payment,
    /// including keys other writers committed while the insert waited on them. Any
    /// refuses the whole file.
    static func conflicts(_ rows: PaymentRows) -> PostgresQuery {
        """
        SELECT DISTINCT i.idempotency_key
        FROM unnest(\(rows.keys)::text[], \(rows.fingerprints)::text[]) AS i(idempotency_key, request_fingerprint)
        JOIN payment_keys k ON k.idempotency_key = i.idempotency_key
        WHERE k.request_fingerprint <> i.request_fingerprint
          -- An adopted payment's fingerprint ends in '|*': any request for the same payment
          -- (PaymentRequest.adoptedFingerprint).
          AND NOT (right(k.request_fingerprint, 2) = '|*' AND starts_with(i.request_fingerprint, left(k.request_fingerprint, -1)))
        """
    }

    /// `POST /v1/payments`: inserts and returns the new job (`Job.decode` at 0); an
    /// existing key returns nothing.
    static func insertReturningJobs(_ rows: PaymentRows) -> PostgresQuery {
        """
        WITH input AS (
            SELECT r.* FROM unnest(\(rows.keys)::text[], \(rows.fingerprints)::text[], \(rows.amounts)::int8[], \(rows.currencies)::text[],
                                   \(rows.debtors)::text[], \(rows.creditors)::text[], \(rows.priorities)::int2[], \(rows.maxAttempts)::int4[],
                                   \(rows.budgets)::int4[])
                AS r(idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor, priority, max_attempts, give_up_after_s)
            JOIN currencies c ON c.code = r.currency),
        keyed AS (
            INSERT INTO payment_keys (idempotency_key, payment_id, request_fingerprint)
            SELECT idempotency_key, nextval('payment_ids'), request_fingerprint FROM input
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING idempotency_key, payment_id)
        INSERT INTO payment_queue AS j (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
                                        priority, max_attempts, give_up_at) OVERRIDING SYSTEM VALUE
        SELECT k.payment_id, i.idempotency_key, i.request_fingerprint, i.amount_minor, i.currency, i.debtor, i.creditor,
               i.priority, i.max_attempts, now() + make_interval(secs => i.give_up_after_s)
        FROM keyed k JOIN input i ON i.idempotency_key = k.idempotency_key
        RETURNING j.id, j.idempotency_key, j.amount_minor, j.currency::text, j.debtor, j.creditor, j.priority, j.max_attempts,
                  j.state, j.attempt, j.last_error, j.charge_id,
                  to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                  to_char(j.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                  to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                  to_char(j.give_up_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), j.failure_reason,
                  to_char(j.cancel_requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), j.held_reason
        """
    }

    /// The payment holding a key, wherever it is (queue, history, archive), with the
    /// fingerprint of the request that created it first and the job after it (`Job.decode`
    /// at 1). On the primary: the replay of a POST.
    static func lookup(idempotencyKey: String) -> PostgresQuery {
        """
        SELECT k.request_fingerprint, j.id, j.idempotency_key, j.amount_minor, j.currency::text, j.debtor, j.creditor,
               j.priority, j.max_attempts, j.state, j.attempt, j.last_error, j.charge_id,
               to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               to_char(j.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               to_char(j.give_up_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), j.failure_reason,
               to_char(j.cancel_requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), j.held_reason
        FROM payment_keys k CROSS JOIN LATERAL (
            SELECT id, idempotency_key, amount_minor, currency, debtor, creditor, priority, max_attempts, state, attempt, last_error,
                   charge_id, created_at, updated_at, finished_at, give_up_at, failure_reason, cancel_requested_at, held_reason
            FROM payment_queue WHERE id = k.payment_id
            UNION ALL
            SELECT id, idempotency_key, amount_minor, currency, debtor, creditor, priority, max_attempts, state, attempt, last_error,
                   charge_id, created_at, updated_at, finished_at, give_up_at, failure_reason, cancel_requested_at, held_reason
            FROM payment_history WHERE id = k.payment_id
            UNION ALL
            SELECT id, idempotency_key, amount_minor, currency, debtor, creditor, priority, max_attempts, state, attempt, last_error,
                   charge_id, created_at, updated_at, finished_at, give_up_at, failure_reason, cancel_requested_at, held_reason
            FROM payment_jobs_archive WHERE id = k.payment_id
            LIMIT 1) j
        WHERE k.idempotency_key = \(idempotencyKey)
        """
    }

    /// The primary's WAL position: after a commit, a replica that has replayed past it has the commit.
    static let currentLSN: PostgresQuery = "SELECT pg_current_wal_lsn()::text"
}
