import Foundation
import Logging
import PaymentsCore
import PaymentsSimulator
import PostgresNIO

/// The money invariants, checked on the primary after a run: what the tests, the demo
/// and the fault suite assert.
public struct InvariantReport: Sendable {
    public struct Check: Sendable {
        public var name: String
        public var passed: Bool
        public var detail: String
    }
    public var checks: [Check]
    public var passed: Bool { checks.allSatisfy(\.passed) }

    public var text: String {
        checks.map { "\($0.passed ? "PASS" : "FAIL")  \($0.name): \($0.detail)" }.joined(separator: "\n")
    }
}

public enum Invariants {
    /// - Parameters:
    ///   - keyPrefix: only jobs whose idempotency key starts with `<prefix>-` (nil: all jobs)
    ///   - journals: simulated-gateway journals of every `serve` that ran
    ///   - allowBudgetFailures: a run whose faults outlast the payments' retry budget may
    ///     fail payments as `budget_exhausted`; any other run must fail none but declines.
    public static func check(_ client: PostgresClient, keyPrefix: String?, journals: [String],
                             allowBudgetFailures: Bool = false, logger: Logger) async throws -> InvariantReport {
        let pattern = keyPrefix.map { $0 + "-%" } ?? "%"
        var checks: [InvariantReport.Check] = []

        func scalar(_ query: PostgresQuery) async throws -> Int {
            for try await (value) in try await client.query(query, logger: logger).decode(Int64.self) { return Int(value) }
            return 0
        }

        let total = try await scalar("SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(pattern)")
        let open = try await scalar("SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(pattern) AND state = ANY(\(JobState.open)::text[])")
        checks.append(.init(name: "every job terminal", passed: open == 0, detail: "\(total - open) of \(total) terminal, \(open) queued, running or reconciling"))

        // Liveness: a payment fails only for the payer's reason. Our own faults heal within
        // the budget, so one failed otherwise (no reason recorded, or the budget) is a defect.
        let failed = try await scalar("SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(pattern) AND state = \(JobState.failed)")
        let declined = try await scalar("""
            SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(pattern) AND state = \(JobState.failed)
              AND failure_reason = ANY(\(FailureReason.allCases.filter(\.isDecline))::text[])
            """)
        let budget = try await scalar("""
            SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(pattern) AND state = \(JobState.failed)
              AND failure_reason = \(FailureReason.budgetExhausted)
            """)
        let undeclined = failed - declined - (allowBudgetFailures ? budget : 0)
        checks.append(.init(name: "no payment failed without a decline", passed: undeclined == 0,
                            detail: "\(failed) failed: \(declined) declined, \(budget) budget exhausted\(allowBudgetFailures ? " (allowed in this run)" : ""), \(failed - declined - budget) without a reason"))

        let succeeded = try await scalar("SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(pattern) AND state = \(JobState.succeeded)")
        let badPostings = try await scalar("""
            SELECT count(*) FROM payment_jobs j
            WHERE j.idempotency_key LIKE \(pattern) AND j.state = \(JobState.succeeded)
              AND (SELECT count(*) FILTER (WHERE l.side = 'debit' AND l.amount_minor = -j.amount_minor AND l.account = j.debtor) = 1
                      AND count(*) FILTER (WHERE l.side = 'credit' AND l.amount_minor = j.amount_minor AND l.account = j.creditor) = 1
                      AND count(*) = 2
                   FROM ledger_entries l WHERE l.job_id = j.id) IS NOT TRUE
            """)
        checks.append(.init(name: "succeeded jobs posted exactly once", passed: badPostings == 0,
                            detail: "\(succeeded - badPostings) of \(succeeded) with one debit and one credit of the right amount"))

        var unbalanced: [String] = []
        let sums: PostgresQuery = """
            SELECT l.currency::text, sum(l.amount_minor)::int8 FROM ledger_entries l JOIN payment_jobs j ON j.id = l.job_id
            WHERE j.idempotency_key LIKE \(pattern) GROUP BY l.currency ORDER BY 1
            """
        var currencies = 0
        for try await (currency, sum) in try await client.query(sums, logger: logger).decode((String, Int64).self) {
            currencies += 1
            if sum != 0 { unbalanced.append("\(currency) \(sum)") }
        }
        checks.append(.init(name: "ledger balanced per currency", passed: unbalanced.isEmpty,
                            detail: unbalanced.isEmpty ? "\(currencies) currencies sum to 0" : "unbalanced: \(unbalanced.joined(separator: ", "))"))

        let postedButNotSucceeded = try await scalar("""
            SELECT count(DISTINCT j.id) FROM payment_jobs j JOIN ledger_entries l ON l.job_id = j.id
            WHERE j.idempotency_key LIKE \(pattern) AND j.state <> \(JobState.succeeded)
            """)
        checks.append(.init(name: "no job both failed and posted", passed: postedButNotSucceeded == 0,
                            detail: "\(postedButNotSucceeded) jobs not succeeded with ledger entries"))

        // The ledger no longer has a foreign key to its payment (a finished payment moves
        // from the queue to the history): a posting whose payment is nowhere is caught
        // here, among the ids the scope's keys were given.
        let orphanPostings = try await scalar("""
            SELECT count(*) FROM ledger_entries l
            WHERE l.job_id BETWEEN (SELECT min(payment_id) FROM payment_keys WHERE idempotency_key LIKE \(pattern))
                               AND (SELECT max(payment_id) FROM payment_keys WHERE idempotency_key LIKE \(pattern))
              AND NOT EXISTS (SELECT 1 FROM payment_jobs j WHERE j.id = l.job_id)
            """)
        checks.append(.init(name: "every posting has its payment", passed: orphanPostings == 0,
                            detail: "\(orphanPostings) ledger entries whose payment is in neither the queue nor the history"))

        // Keys and payments name each other one to one: a key taken for no payment would
        // refuse a payment that was never made; a payment whose key is not taken could be
        // made twice.
        let keyMismatches = try await scalar("""
            SELECT count(*)
            FROM (SELECT payment_id, idempotency_key FROM payment_keys WHERE idempotency_key LIKE \(pattern)) k
            FULL JOIN (SELECT id, idempotency_key FROM payment_jobs WHERE idempotency_key LIKE \(pattern)
                       UNION ALL
                       SELECT id, idempotency_key FROM payment_jobs_archive WHERE idempotency_key LIKE \(pattern)) p
              ON p.id = k.payment_id AND p.idempotency_key = k.idempotency_key
            WHERE k.payment_id IS NULL OR p.id IS NULL
            """)
        checks.append(.init(name: "every key names its one payment", passed: keyMismatches == 0,
                            detail: "\(keyMismatches) keys without their payment or payments without their key"))

        if !journals.isEmpty {
            // A journal that is missing or unreadable must fail the proof, not shrink it.
            var charges: [ChargeRecord] = []
            var unreadable: [String] = []
            for path in journals {
                guard FileManager.default.isReadableFile(atPath: path) else { unreadable.append(path); continue }
                // A damaged line is a key the gateway may have forgotten: the proof fails.
                do { charges += try ChargeJournal.read(path) } catch { unreadable.append("\(path) (\(error))") }
            }
            checks.append(.init(name: "gateway journals readable", passed: unreadable.isEmpty,
                                detail: unreadable.isEmpty ? "\(journals.count) journals, \(charges.count) charges"
                                    : "missing, unreadable or damaged: \(unreadable.joined(separator: ", "))"))
            let scoped = charges.filter { keyPrefix == nil || $0.key.hasPrefix(keyPrefix! + "-") }
            var jobs: [JobCharge] = []
            let rows = try await client.query("""
                SELECT idempotency_key, id, state, charge_id, amount_minor, currency::text
                FROM payment_jobs WHERE idempotency_key LIKE \(pattern)
                """, logger: logger)
            for try await (key, id, state, chargeID, amount, currency) in rows.decode((String, Int64, JobState, String?, Int64, String).self) {
                jobs.append(JobCharge(key: key, id: id, state: state, chargeID: chargeID, amountMinor: amount, currency: currency))
            }
            checks += ChargeAudit.checks(charges: scoped, jobs: jobs)
        }
        return InvariantReport(checks: checks)
    }
}
