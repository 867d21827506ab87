import Foundation
import Logging
import PostgresNIO

/// `payments reconcile`: the provider's charges against the database, the way a payment
/// operation closes each day (settlement), and the way back after a restore to an earlier
/// point: the provider still holds every charge made after that point, and `adopt`
/// re-creates each lost payment from its charge, settled through the reconciler's own
/// completion path. Reads the primary (through pgbouncer-write): a replica may lag.
public struct ProviderReconciliation: Sendable {
    public let client: PostgresClient
    public let provider: any ChargeListing
    public let logger: Logger
    public var pageSize: Int

    public init(client: PostgresClient, provider: any ChargeListing, pageSize: Int = 1_000, logger: Logger) {
        self.client = client
        self.provider = provider
        self.pageSize = pageSize
        self.logger = logger
    }

    /// The report, and the charges whose key the database does not know (what `adopt` takes).
    ///
    /// Order matters while payments are being made: the database's clock is read first,
    /// then the provider listed, then only payments that succeeded before that instant are
    /// checked for a charge. A payment succeeds only after its charge was made, so its
    /// charge is in the listing; one that succeeds meanwhile is not falsely reported.
    ///
    /// - Parameter from: only charges made and payments finished at or after it (a day's
    ///   settlement); nil: everything. A charge whose record has no time is always compared.
    public func compare(from: Date? = nil) async throws -> (report: SettlementReport, unknown: [ChargeRecord]) {
        let fromMillis = from.map { Int64($0.timeIntervalSince1970 * 1000) }
        let startedAt = try await scalarDate("SELECT now()")
        var report = SettlementReport()
        var unknown: [ChargeRecord] = []
        var listedKeys = Set<String>()
        var since = 0
        while true {
            let page = try await provider.charges(since: since, limit: pageSize)
            let charges = page.charges.filter { charge in
                guard let fromMillis, let made = charge.createdMillis else { return true }
                return made >= fromMillis
            }
            let payments = try await paymentsHolding(charges.map(\.key))
            for charge in charges {
                listedKeys.insert(charge.key)
                let payment = payments[charge.key]
                if payment == nil && !charge.isRefunded { unknown.append(charge) }
                report.add(charge: charge, payment: payment)
            }
            guard page.hasMore, page.nextSince > since else { break }
            since = page.nextSince
        }
        var after: Int64 = 0
        while true {
            let rows = try await client.query(Self.succeededPage(after: after, from: from ?? .distantPast, before: startedAt, limit: 5_000), logger: logger)
            var last: Int64?
            for try await (id, key, chargeID) in rows.decode((Int64, String, String?).self) {
                last = id
                report.succeededChecked += 1
                if !listedKeys.contains(key) { report.addSucceededWithoutCharge(key: key, paymentID: id, chargeID: chargeID) }
            }
            guard let last else { break }
            after = last
        }
        return (report, unknown)
    }

    /// What `adopt` did.
    public struct Adoption: Sendable, Equatable, Encodable {
        /// Payments re-created and settled `succeeded` with their postings.
        public var adopted: [Int64] = []
        /// Charges whose record lacks the accounts (written before the provider kept them).
        public var withoutAccounts: [String] = []
        /// Charges whose record intake would refuse (see `AdoptionPlan`): not adopted.
        public var refused: [AdoptionPlan.Refusal] = []
        /// Re-created but not settled yet (the provider did not answer in time): the
        /// reconciler of any serve settles them.
        public var pending: [Int64] = []

        enum CodingKeys: String, CodingKey { case adopted, withoutAccounts = "without_accounts", refused, pending }
    }

    /// Re-creates the payment of each charge in `charges` (keys the database does not know)
    /// in `reconciling`, under its old id when `AdoptionPlan` keeps it and no payment took it
    /// meanwhile, made when the provider says it charged, and settles them with `reconciler`
    /// (a lookup by key; the charge matches; posted by the same fenced completion as any
    /// payment). Idempotent: a key already known is skipped, so a second run adopts nothing.
    public func adopt(_ charges: [ChargeRecord], reconciler: Reconciler, settleWithin: Duration = .seconds(60)) async throws -> Adoption {
        var result = Adoption()
        let currencies = try await Catalog.currencies(client, logger: logger)
        var sequence: Int64 = 0
        for try await (value) in try await client.query("SELECT last_value FROM payment_ids", logger: logger).decode(Int64.self) { sequence = value }
        let plan = AdoptionPlan(charges: charges, currencies: currencies, sequence: sequence)
        result.withoutAccounts = plan.withoutAccounts
        result.refused = plan.refused
        for refusal in plan.refused {
            logger.error("a provider's charge is not adopted; a person decides", metadata: ["key": "\(refusal.key)", "charge_id": "\(refusal.chargeID)", "reason": "\(refusal.reason)"])
        }
        guard !plan.entries.isEmpty else { return result }
        var created: [Int64] = []
        let highestID = plan.highestKeptID
        for batch in plan.entries.chunks(of: 1_000) {
            created += try await client.withTransaction(logger: logger) { connection in
                // No intake between reading the sequence and moving it (a setval computed from
                // a value read before another transaction's nextval would move it back, and
                // hand out an id twice): SHARE ROW EXCLUSIVE waits for the inserts under way
                // and holds new ones until this commits.
                try await connection.query("LOCK TABLE payment_keys IN SHARE ROW EXCLUSIVE MODE", logger: logger)
                // Past every adopted id, only ever forward: a payment taken after this must not get one.
                try await connection.query(Self.advanceIDs(past: highestID), logger: logger)
                var ids: [Int64] = []
                for try await (id) in try await connection.query(Self.adoptStatement(batch), logger: logger).decode(Int64.self) { ids.append(id) }
                return ids
            }
        }
        logger.info("re-created lost payments from the provider's charges; settling them", metadata: ["payments": "\(created.count)"])
        let deadline = ContinuousClock.now + settleWithin
        var open = Set(created)
        while !open.isEmpty && ContinuousClock.now < deadline {
            _ = try await reconciler.reconcileOnce()
            let rows = try await client.query("SELECT id FROM payment_queue WHERE id = ANY(\(Array(open))::int8[])", logger: logger)
            var still = Set<Int64>()
            for try await (id) in rows.decode(Int64.self) { still.insert(id) }
            open = still
            if !open.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        }
        result.adopted = created.filter { !open.contains($0) }.sorted()
        result.pending = open.sorted()
        return result
    }

    // MARK: statements

    /// The payment each key names, wherever it is (queue, history or archive).
    static func paymentsFor(keys: [String]) -> PostgresQuery {
        """
        SELECT k.idempotency_key, j.id, j.state, j.amount_minor, j.currency::text, j.charge_id
        FROM payment_keys k CROSS JOIN LATERAL (
            SELECT id, state, amount_minor, currency, charge_id FROM payment_queue WHERE id = k.payment_id
            UNION ALL
            SELECT id, state, amount_minor, currency, charge_id FROM payment_history WHERE id = k.payment_id
            UNION ALL
            SELECT id, state, amount_minor, currency, charge_id FROM payment_jobs_archive WHERE id = k.payment_id
            LIMIT 1) j
        WHERE k.idempotency_key = ANY(\(keys)::text[])
        """
    }

    /// Succeeded payments finished from `from` to `before`, by id after `after` (a keyset page).
    static func succeededPage(after: Int64, from: Date, before: Date, limit: Int) -> PostgresQuery {
        """
        SELECT id, idempotency_key, charge_id FROM payment_history
        WHERE state = 'succeeded' AND id > \(after) AND finished_at >= \(from) AND finished_at <= \(before)
        ORDER BY id
        LIMIT \(Int64(limit))
        """
    }

    static func advanceIDs(past id: Int64) -> PostgresQuery {
        """
        SELECT setval('payment_ids', \(id)) FROM payment_ids
        WHERE \(id) > CASE WHEN is_called THEN last_value ELSE 0 END
        """
    }

    /// Each charge's payment, queued `reconciling` (the reconciler settles it by key), under
    /// its old id when the plan keeps it and no payment holds that id now, created when the
    /// provider made the charge; a key the database knows by then inserts nothing. Returns
    /// the ids created.
    static func adoptStatement(_ batch: [AdoptionPlan.Entry]) -> PostgresQuery {
        let ids = batch.map(\.charge.jobID), keeps = batch.map(\.keepsID), keys = batch.map(\.charge.key)
        let charges = batch.map(\.charge.chargeID), made = batch.map { $0.charge.createdMillis ?? -1 }
        let amounts = batch.map(\.payment.amountMinor), currencies = batch.map(\.payment.currency)
        let debtors = batch.map(\.payment.debtor), creditors = batch.map(\.payment.creditor)
        let fingerprints = batch.map { PaymentRequest.adoptedFingerprint(of: $0.payment) }
        return """
            WITH input AS (
                SELECT * FROM unnest(\(ids)::int8[], \(keeps)::bool[], \(keys)::text[], \(charges)::text[], \(made)::int8[],
                                     \(amounts)::int8[], \(currencies)::text[], \(debtors)::text[], \(creditors)::text[], \(fingerprints)::text[])
                    AS t(id, keep_id, idempotency_key, charge_id, created_ms, amount_minor, currency, debtor, creditor, request_fingerprint)),
            placed AS (
                SELECT i.*, CASE WHEN i.keep_id
                                  AND NOT EXISTS (SELECT 1 FROM payment_queue q WHERE q.id = i.id)
                                  AND NOT EXISTS (SELECT 1 FROM payment_history h WHERE h.id = i.id)
                                  AND NOT EXISTS (SELECT 1 FROM payment_jobs_archive a WHERE a.id = i.id)
                             THEN i.id ELSE nextval('payment_ids') END AS payment_id
                FROM input i),
            keyed AS (
                INSERT INTO payment_keys (idempotency_key, payment_id, request_fingerprint)
                SELECT idempotency_key, payment_id, request_fingerprint FROM placed
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING idempotency_key, payment_id),
            adopted AS (
                INSERT INTO payment_queue AS j (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
                                                state, attempt, run_at, give_up_at, created_at, last_error) OVERRIDING SYSTEM VALUE
                SELECT k.payment_id, p.idempotency_key, p.request_fingerprint, p.amount_minor, p.currency, p.debtor, p.creditor,
                       'reconciling', 1, now(), now() + interval '1 hour',
                       CASE WHEN p.created_ms >= 0 THEN least(to_timestamp(p.created_ms / 1000.0), now()) ELSE now() END,
                       'adopted: the database had lost this payment; the provider holds charge ' || p.charge_id
                FROM keyed k JOIN placed p ON p.idempotency_key = k.idempotency_key
                RETURNING j.id)
            SELECT id FROM adopted
            """
    }

    private func paymentsHolding(_ keys: [String]) async throws -> [String: SettlementReport.Payment] {
        guard !keys.isEmpty else { return [:] }
        var found: [String: SettlementReport.Payment] = [:]
        let rows = try await client.query(Self.paymentsFor(keys: keys), logger: logger)
        for try await (key, id, state, amount, currency, chargeID) in rows.decode((String, Int64, String, Int64, String, String?).self) {
            guard let state = JobState(rawValue: state) else { continue }
            found[key] = .init(id: id, state: state, amountMinor: amount, currency: currency, chargeID: chargeID)
        }
        return found
    }

    private func scalarDate(_ query: PostgresQuery) async throws -> Date {
        for try await (value) in try await client.query(query, logger: logger).decode(Date.self) { return value }
        throw PostgresError.protocol("no row")
    }
}
