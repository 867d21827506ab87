import Foundation
import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    /// What an operator may do by hand to the queue and the catalog, and what the database
    /// refuses whatever the timing.
    @Suite struct OperatorGuardsTests {
        /// Defect (review of migration 0006): `payment_queue_finish` deleted whatever ids it
        /// was given. A job claimed after the caller chose it (its DELETE re-checked only the
        /// id) was recorded cancelled while its worker charged the customer, for ever: the
        /// history is immutable and the reconciler never sees it. Only queued jobs are
        /// finished unless the caller names other states.
        @Test func cancellingNeverFinishesAJobAWorkerHolds() async throws {
            try await TestEnvironment.migrate()
            let prefix = TestEnvironment.uniquePrefix("cancel-held")
            let result = try await TestEnvironment.run(["enqueue", "--count", "2", "--key-prefix", prefix])
            try #require(result.status == 0, "\(result.stderr)")
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                // Job 0 is claimed by a worker, as after the caller picked its id.
                try await client.query("""
                    UPDATE payment_queue SET state = 'running', attempt = 1, lease_owner = 'worker/1',
                           lease_expires_at = now() + interval '30 seconds', claimed_at = now()
                    WHERE idempotency_key = \(prefix + "-0")
                    """, logger: TestEnvironment.logger)
                let moved = try await client.query("""
                    SELECT payment_queue_finish(ARRAY(SELECT id FROM payment_queue WHERE idempotency_key LIKE \(prefix + "-%")),
                                                'cancelled', 'cancelled by an operator')::int8
                    """, logger: TestEnvironment.logger).collect().first?.decode(Int64.self)
                #expect(moved == 1, "only the queued job is cancelled")
            }
            let states = try await Integration.WorkerTests.states(prefix)
            #expect(states == ["running": 1, "cancelled": 1], "\(states)")
            try await QueueReset.cancelLeftovers()
        }

        /// The queue has no foreign key to the catalog any more (0007): a currency payments
        /// may use is never removed or renamed.
        @Test func aCurrencyCannotBeRemoved() async throws {
            try await TestEnvironment.migrate()
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                await #expect(throws: (any Error).self) {
                    try await client.query("DELETE FROM currencies WHERE code = 'EUR'", logger: TestEnvironment.logger)
                }
                await #expect(throws: (any Error).self) {
                    try await client.query("UPDATE currencies SET code = 'EUX' WHERE code = 'EUR'", logger: TestEnvironment.logger)
                }
            }
            #expect(try await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT count(*) FROM currencies WHERE code = 'EUR'") == 1)
        }
    

        /// A posting is money moved: once written it is never changed or removed, by the
        /// application or by hand (migration 0010). Shown on a posting written and rolled
        /// back inside each transaction, so the test leaves nothing behind.
        @Test(arguments: [
            "UPDATE ledger_entries SET amount_minor = amount_minor - 1 WHERE job_id = $1",
            "UPDATE ledger_entries SET account = 'acct_elsewhere' WHERE job_id = $1",
            "DELETE FROM ledger_entries WHERE job_id = $1",
        ])
        func aPostingIsNeverChangedOrRemoved(_ statement: String) async throws {
            try await TestEnvironment.migrate()
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                do {
                    try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                        let id = try await connection.query("SELECT nextval('payment_ids')", logger: TestEnvironment.logger)
                            .collect().first!.decode(Int64.self)
                        try await connection.query("""
                            INSERT INTO ledger_entries (job_id, side, account, amount_minor, currency, attempt)
                            VALUES (\(id), 'debit', 'acct_1', -100, 'EUR', 1)
                            """, logger: TestEnvironment.logger)
                        var query = PostgresQuery(unsafeSQL: statement)
                        query.binds.append(id, context: .default)
                        try await connection.query(query, logger: TestEnvironment.logger)
                    }
                    Issue.record("a posting was changed or removed: \(statement)")
                } catch {
                    #expect(describe(error).contains("postings are never changed"), "\(describe(error))")
                }
            }
        }
    }
}
