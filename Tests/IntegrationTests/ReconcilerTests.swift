import Foundation
import PaymentsCore
import PaymentsSimulator
import PostgresNIO
import Testing

extension Integration {
    /// The reconciler is a service of its own, run by every serve with workers.
    @Suite struct ReconcilerTests {
        /// Two payments of `prefix` put in `reconciling` as if their answers were lost (or, when
        /// `adopted`, as `reconcile --adopt` leaves them), the first charged at `gateway`.
        static func twoReconciling(_ prefix: String, gateway: SimulatedGateway, adopted: Bool, client: PostgresClient) async throws {
            try await Integration.WorkerTests.enqueue(2, prefix: prefix)
            let fingerprint: PostgresQuery = adopted
                ? "UPDATE payment_queue SET request_fingerprint = amount_minor || '|' || currency || '|' || debtor || '|' || creditor || '|*' WHERE idempotency_key LIKE \(prefix + "-%")"
                : "SELECT 1"
            try await client.query(fingerprint, logger: TestEnvironment.logger)
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
        }

        /// Each payment of `prefix`: key, state, held reason (or -), ledger entries.
        static func outcomes(_ prefix: String) async throws -> [String] {
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("""
                    SELECT j.state, coalesce(j.held_reason, '-'), (SELECT count(*) FROM ledger_entries l WHERE l.job_id = j.id)::int8
                    FROM payment_jobs j WHERE j.idempotency_key LIKE \(prefix + "-%") ORDER BY j.idempotency_key
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode((String, String, Int64).self) }
                    .map { "\($0.0) \($0.1) \($0.2)" }
            }
        }

        /// Run alone against a gateway: a reconciling payment the gateway holds a charge for
        /// ends succeeded with its postings; one it holds none for (every deadline past, the
        /// retry budget not spent) goes back to the queue, never to failed.
        @Test func theReconcilerAloneSettlesWithTheGateway() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("reconciler")
            let gateway = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0))
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await Self.twoReconciling(prefix, gateway: gateway, adopted: false, client: client)
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
            let states = try await Self.outcomes(prefix)
            #expect(states == ["succeeded - 2", "queued - 0"], "\(states)")
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// A payment re-created from the provider's record (`reconcile --adopt`; its
        /// fingerprint ends in `|*`) whose charge the provider no longer holds is held for an
        /// operator, never queued again: the provider said it charged the payer, so a new
        /// charge could take the money twice. One whose charge is there settles as usual.
        @Test func anAdoptedPaymentWhoseChargeIsGoneIsHeldNotChargedAgain() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("adoptgone")
            let gateway = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0))
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await Self.twoReconciling(prefix, gateway: gateway, adopted: true, client: client)
                let reconciler = Reconciler(store: JobStore(client: client, logger: TestEnvironment.logger), gateway: gateway,
                                            configuration: WorkerConfiguration(), metrics: WorkerMetrics(), logger: TestEnvironment.logger)
                #expect(try await reconciler.reconcileOnce() >= 2)
            }
            let states = try await Self.outcomes(prefix)
            #expect(states == ["succeeded - 2", "reconciling adopted_charge_missing 0"], "\(states)")

            // The operator's way out: --refund is refused (the charge was the payment's own);
            // --cancel asks the provider first, and it holds no charge for the key.
            let held = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT id FROM payment_queue WHERE idempotency_key = \(prefix + "-1")")
            let provider = try GatewayProcess(port: 18_150 + TestEnvironment.portOffset)
            try await provider.waitUntilHealthy()
            let refused = try await TestEnvironment.run(["resolve", "\(held)", "--refund", "--gateway-url", provider.url])
            #expect(refused.status == 1 && refused.stderr.contains("--cancel"), "\(refused.stdout) \(refused.stderr)")
            let cancelled = try await TestEnvironment.run(["resolve", "\(held)", "--cancel", "--gateway-url", provider.url])
            #expect(cancelled.status == 0 && cancelled.stdout.contains("cancelled"), "\(cancelled.stdout) \(cancelled.stderr)")
            #expect(try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_history WHERE id = \(held) AND state = 'cancelled'") == 1)
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }
    }
}
