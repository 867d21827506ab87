import Foundation
import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    /// The reaper is a service of its own, run by every serve with workers.
    @Suite struct LeaseReaperTests {
        /// Run alone, it returns a job whose lease ran out to the queue, counting the lost
        /// lease, and sends one that lost its last allowed lease to `reconciling` (it may
        /// have been charged under any of them).
        @Test func theReaperAloneReturnsExpiredLeases() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("reaper")
            try await Integration.WorkerTests.enqueue(2, prefix: prefix)
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("""
                    UPDATE payment_queue SET state = 'running', attempt = 1, claim_seq = 1, claimed_at = now() - interval '10 seconds',
                           lease_owner = 'test/0/gone', lease_expires_at = now() - interval '1 second', charge_deadline_at = now(),
                           lease_losses = CASE WHEN idempotency_key = \(prefix + "-1") THEN 2 ELSE 0 END
                    WHERE idempotency_key LIKE \(prefix + "-%")
                    """, logger: TestEnvironment.logger)
                var configuration = WorkerConfiguration()
                configuration.reapInterval = .milliseconds(100)
                configuration.maxLeaseLosses = 3
                let metrics = WorkerMetrics()
                let reaper = LeaseReaper(store: JobStore(client: client, logger: TestEnvironment.logger), configuration: configuration,
                                         metrics: metrics, logger: TestEnvironment.logger)
                let running = Task { try await reaper.run() }
                defer { running.cancel() }
                try await TestEnvironment.eventually("both leases reaped") {
                    try await TestEnvironment.scalar(TestEnvironment.writeURL,
                        "SELECT count(*) FROM payment_queue WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'running'") == 0
                }
                #expect(metrics.snapshot.reaped >= 2)
            }
            let states = try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("""
                    SELECT idempotency_key, state, lease_losses, lease_owner IS NULL FROM payment_queue
                    WHERE idempotency_key LIKE \(prefix + "-%") ORDER BY idempotency_key
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode((String, String, Int32, Bool).self) }
            }
            #expect(states.map { "\($0.1) \($0.2) \($0.3)" } == ["queued 1 true", "reconciling 3 true"], "\(states)")
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }
    }
}
