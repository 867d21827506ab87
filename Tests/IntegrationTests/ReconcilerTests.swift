import Foundation
import PaymentsCore
import PaymentsSimulator
import PostgresNIO
import Testing

extension Integration {
    /// The reconciler is a service of its own, run by every serve with workers.
    @Suite struct ReconcilerTests {
        /// Run alone against a gateway: a reconciling payment the gateway holds a charge for
        /// ends succeeded with its postings; one it holds none for (every deadline past, the
        /// retry budget not spent) goes back to the queue, never to failed.
        @Test func theReconcilerAloneSettlesWithTheGateway() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("reconciler")
            try await Integration.WorkerTests.enqueue(2, prefix: prefix)
            let gateway = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0))
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                let rows = try await client.query("""
                    UPDATE payment_queue SET state = 'reconciling', attempt = 1, claim_seq = 1, run_at = now() - interval '1 second',
                           charge_deadline_at = now() - interval '60 seconds', last_error = 'test: outcome unknown'
                    WHERE idempotency_key LIKE \(prefix + "-%")
                    RETURNING id, idempotency_key, amount_minor, currency, debtor, creditor
                    """, logger: TestEnvironment.logger).collect()
                let charged = try #require(try rows.map { try $0.decode((Int64, String, Int64, String, String, String).self) }
                    .first { $0.1 == prefix + "-0" })
                // The charge landed at the gateway; its answer never reached a worker.
                let outcome = await gateway.charge(ChargeRequest(
                    idempotencyKey: charged.1, payment: Payment(amountMinor: charged.2, currency: charged.3, debtor: charged.4, creditor: charged.5),
                    jobID: charged.0, attempt: 1))
                guard case .accepted = outcome else { Issue.record("the gateway did not charge: \(outcome)"); return }
                var configuration = WorkerConfiguration()
                configuration.reconcileInterval = .milliseconds(100)
                let reconciler = Reconciler(store: JobStore(client: client, logger: TestEnvironment.logger), gateway: gateway,
                                            configuration: configuration, metrics: WorkerMetrics(), logger: TestEnvironment.logger)
                let running = Task { try await reconciler.run() }
                defer { running.cancel() }
                try await TestEnvironment.eventually("both settled") {
                    try await TestEnvironment.scalar(TestEnvironment.writeURL,
                        "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'reconciling'") == 0
                }
            }
            let states = try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("""
                    SELECT j.idempotency_key, j.state, (SELECT count(*) FROM ledger_entries l WHERE l.job_id = j.id)::int8
                    FROM payment_jobs j WHERE j.idempotency_key LIKE \(prefix + "-%") ORDER BY j.idempotency_key
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode((String, String, Int64).self) }
            }
            #expect(states.map { "\($0.1) \($0.2)" } == ["succeeded 2", "queued 0"], "\(states)")
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }
    }
}
