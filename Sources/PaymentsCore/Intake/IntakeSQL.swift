import PostgresNIO

/// New payments as columns, bound as arrays for one `INSERT … SELECT * FROM unnest(…)`:
/// the one place the insert column list is written, used by the API (one row) and by
/// bulk enqueue (thousands).
struct PaymentRows {
    static let insertColumns = "idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor, priority, max_attempts"
    /// The relation's column beside `insertColumns`: the payment's retry budget in seconds
    /// (its own, or the intake's default); the insert turns it into `give_up_at`.
    static let budgetColumn = "give_up_after_s"

    /// `insertColumns`, each qualified by `alias`.
    static func insertColumns(of alias: String) -> String {
        insertColumns.split(separator: ",").map { "\(alias).\($0.trimmingCharacters(in: .whitespaces))" }.joined(separator: ", ")
    }

    private var keys: [String] = []
    private var fingerprints: [String] = []
    private var amounts: [Int64] = []
    private var currencies: [String] = []
    private var debtors: [String] = []
    private var creditors: [String] = []
    private var priorities: [Int16] = []
    private var maxAttempts: [Int32] = []
    private var budgets: [Int32] = []

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

    /// `SELECT * FROM unnest(…) AS t(<insertColumns>)`: the rows as a relation.
    var relation: PostgresQuery {
        """
        SELECT * FROM unnest(\(keys)::text[], \(fingerprints)::text[], \(amounts)::int8[], \(currencies)::text[],
                             \(debtors)::text[], \(creditors)::text[], \(priorities)::int2[], \(maxAttempts)::int4[],
                             \(budgets)::int4[])
            AS t(\(unescaped: Self.insertColumns), \(unescaped: Self.budgetColumn))
        """
    }
}

/// Every statement that takes payments in. A key names one payment for ever:
/// payment_keys, which only grows, holds every key with its payment's id, whether the
/// payment is queued, finished or archived. The key and the queued job are inserted in
/// one statement, so a job exists exactly when its key does. The inserts wrap
/// `PaymentRows.relation` (whose binds they keep) and add no binds of their own.
enum IntakeSQL {
    /// Takes the rows' new keys (one id each) and queues their jobs; a key already taken
    /// inserts nothing. The rows' keys must be distinct (`PaymentRows(distinctKeys:)`):
    /// without a sort to find repeats, the statement stays a hash join. Rows whose
    /// currency the catalog lacks are left out (one hash join of the catalog, not a
    /// foreign-key check per row: migration 0007); `unknownCurrencies` counts them so the
    /// caller refuses the batch.
    private static func insertNew(_ relation: String, returning: String) -> String {
        """
        WITH input AS (
            SELECT r.* FROM (\(relation)) r JOIN currencies c ON c.code = r.currency),
        keyed AS (
            INSERT INTO payment_keys (idempotency_key, payment_id, request_fingerprint)
            SELECT idempotency_key, nextval('payment_ids'), request_fingerprint FROM input
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING idempotency_key, payment_id),
        queued AS (
            INSERT INTO payment_queue AS j (id, \(PaymentRows.insertColumns), give_up_at) OVERRIDING SYSTEM VALUE
            SELECT k.payment_id, \(PaymentRows.insertColumns(of: "i")),
                   now() + make_interval(secs => i.\(PaymentRows.budgetColumn))
            FROM keyed k JOIN input i ON i.idempotency_key = k.idempotency_key
            RETURNING \(returning))
        """
    }

    /// How many of the rows name a currency the catalog lacks.
    private static func unknownCurrencies(_ relation: String) -> String {
        "(SELECT count(*) FROM (\(relation)) r WHERE NOT EXISTS (SELECT 1 FROM currencies c WHERE c.code = r.currency))::int8"
    }

    /// Inserts new keys, skips existing ones; returns how many rows were new and how many
    /// name a currency the catalog lacks (the caller rolls back if any).
    static func insertCountingNew(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            insertNew(relation, returning: "1") + "\nSELECT (SELECT count(*) FROM queued)::int8, \(unknownCurrencies(relation))"
        }
    }

    /// After inserting a file's rows, in the same transaction and so in a newer snapshot
    /// than the insert (READ COMMITTED): its keys that belong to another payment,
    /// including keys other writers committed while the insert waited on them. Any
    /// refuses the whole file.
    static func conflicts(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            """
            WITH input AS (\(relation))
            SELECT DISTINCT i.idempotency_key
            FROM input i JOIN payment_keys k ON k.idempotency_key = i.idempotency_key
            WHERE k.request_fingerprint <> i.request_fingerprint
              -- An adopted payment's fingerprint ends in '|*': any request for the same payment
              -- (PaymentRequest.adoptedFingerprint).
              AND NOT (right(k.request_fingerprint, 2) = '|*' AND starts_with(i.request_fingerprint, left(k.request_fingerprint, -1)))
            """
        }
    }

    /// Inserts and returns the new jobs (`Job.columns`); an existing key returns nothing.
    static func insertReturningJobs(_ rows: PaymentRows) -> PostgresQuery {
        wrapping(rows.relation) { relation in
            insertNew(relation, returning: Job.storedColumns) + "\nSELECT \(Job.columns) FROM queued j"
        }
    }

    /// The payment holding a key, wherever it is (queue, history, archive), with the
    /// fingerprint of the request that created it.
    static func lookup(idempotencyKey: String) -> PostgresQuery {
        """
        SELECT k.request_fingerprint, \(unescaped: Job.columns)
        FROM payment_keys k CROSS JOIN LATERAL (\(paymentWithIDFrom: "k.payment_id")) j
        WHERE k.idempotency_key = \(idempotencyKey)
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
