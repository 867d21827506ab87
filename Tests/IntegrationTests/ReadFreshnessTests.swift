import Foundation
import PaymentsCore
import Testing

extension Integration {
    /// Read-your-writes through a replica: a read that says it is as fresh as a token must
    /// show every write the token covers.
    @Suite struct ReadFreshnessTests {
        /// Runs `sql` as the superuser on `node` (`scripts/topology psql super`); its output.
        static func superSQL(_ node: String, _ sql: String) async throws -> String {
            let out = try await TestEnvironment.topology(["psql", "super", node, "-d", "resilient_payment_processor", "-qtAc", sql])
            try #require(out.status == 0, "psql on \(node) failed: \(out.stderr)")
            return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// The replica replays the write after the read's statement began (its snapshot is
        /// older) but before the read compares its replay position with the token: the
        /// comparison must not vouch for the older snapshot. Found as a flaky API suite
        /// check (a cancel read back as queued, 2026-12-04).
        @Test func aTokenCheckedAfterTheSnapshotDoesNotVouchForIt() async throws {
            try await TestEnvironment.migrate()
            let key = TestEnvironment.uniquePrefix("fresh")
            let id = try await Self.superSQL("primary", """
                INSERT INTO payment_queue (idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor)
                VALUES ('\(key)', '\(key)', 100, 'EUR', 'acct_1', 'acct_2') RETURNING id
                """)
            try await TestEnvironment.eventually("replica-1 has the payment") {
                try await Self.superSQL("replica-1", "SELECT count(*) FROM payment_queue WHERE id = \(id)") == "1"
            }
            _ = try await Self.superSQL("replica-1", "SELECT pg_wal_replay_pause()")
            do {
                _ = try await Self.superSQL("primary", "UPDATE payment_queue SET last_error = 'written' WHERE id = \(id)")
                let token = try await Self.superSQL("primary", "SELECT pg_current_wal_lsn()")
                // One statement: its snapshot is taken, then replay resumes and catches up
                // (a second), then payment_status runs (LATERAL on the sleep orders it last).
                let answer = try await Self.superSQL("replica-1", """
                    SELECT s.fresh, coalesce(s.last_error, '') FROM
                      (SELECT pg_wal_replay_resume()::text || pg_sleep(1)::text AS t) r,
                      LATERAL payment_status(\(id) + 0 * length(r.t), '\(token)') s
                    """)
                let caughtUp = try await Self.superSQL("replica-1", "SELECT pg_last_wal_replay_lsn() >= '\(token)'::pg_lsn")
                #expect(caughtUp == "t", "the replica did not replay the write within the statement")
                #expect(answer == "t|written" || answer.hasPrefix("f|"),
                        "a read marked fresh for \(token) showed the payment before the write: \(answer)")
            } catch {
                _ = try? await Self.superSQL("replica-1", "SELECT pg_wal_replay_resume()")
                throw error
            }
            _ = try? await Self.superSQL("replica-1", "SELECT pg_wal_replay_resume()")
        }
    }
}
