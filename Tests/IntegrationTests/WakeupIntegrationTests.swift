import Foundation
@testable import PaymentsCore
import PaymentsSimulator
import PostgresNIO
import ServiceLifecycle
import Testing

extension Integration {
    /// New payments announced by their intake (NOTIFY) are claimed at once by a claimer
    /// that listens on the primary, not at its next poll; a listener whose connection is
    /// killed listens again.
    @Suite struct WakeupIntegrationTests {
        /// A claimer that polls every 30 s: within seconds only a wake-up claims anything.
        static func slowPolling(_ label: String) -> WorkerConfiguration {
            var configuration = WorkerServicesTests.configuration(label)
            configuration.idlePollMin = .seconds(30)
            configuration.idlePollBusyMin = .seconds(30)
            configuration.idlePollMax = .seconds(30)
            configuration.concurrency = 20
            return configuration
        }

        static var primaryURL: DatabaseURL { try! DatabaseURL(parsing: TestEnvironment.primaryDSN) }

        static func succeeded(_ prefix: String) async throws -> Int {
            try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_history WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'succeeded'")
        }

        static func listenerBackends() async throws -> [Int] {
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("SELECT pid FROM pg_stat_activity WHERE application_name = \(QueueListener.applicationName) AND pid <> pg_backend_pid()",
                                       logger: TestEnvironment.logger).collect().map { Int(try $0.decode(Int32.self)) }
            }
        }

        /// The worker pool and its listener in one group while `body` runs, then stopped.
        static func withListeningPool(_ label: String, metrics: WorkerMetrics,
                                      _ body: @Sendable (PostgresClient) async throws -> Void) async throws {
            let configuration = slowPolling(label)
            let gateway = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0))
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                let doorbell = Doorbell()
                let listener = QueueListener(url: primaryURL, doorbell: doorbell, metrics: metrics, logger: TestEnvironment.logger)
                let pool = try WorkerPool(store: JobStore(client: client, logger: TestEnvironment.logger), gateway: gateway,
                                          configuration: configuration, metrics: metrics, doorbell: doorbell, logger: TestEnvironment.logger)
                let group = ServiceGroup(configuration: .init(services: [listener] + pool.services, logger: TestEnvironment.logger))
                let running = Task { try await group.run() }
                do {
                    try await TestEnvironment.eventually("the listener listens", timeout: .seconds(10)) { metrics.snapshot.listening }
                    // The claimer has claimed at the listener's first ring and waits its 30 s.
                    try await Task.sleep(for: .milliseconds(500))
                    try await body(client)
                } catch {
                    await group.triggerGracefulShutdown()
                    _ = try? await running.value
                    throw error
                }
                await group.triggerGracefulShutdown()
                try await running.value
            }
        }

        /// Both intakes announce: a bulk enqueue (another process) and `POST /v1/payments`'s
        /// (PaymentIntake). Their payments succeed within seconds where the poll is 30 s away.
        @Test func announcedPaymentsAreClaimedBeforeThePoll() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("wakeup")
            let metrics = WorkerMetrics()
            try await Self.withListeningPool("wakeup", metrics: metrics) { client in
                let before = metrics.snapshot.wakeups
                try await Integration.WorkerTests.enqueue(5, prefix: prefix)
                try await TestEnvironment.eventually("the enqueued payments succeed", timeout: .seconds(10)) {
                    try await Self.succeeded(prefix) == 5
                }
                #expect(metrics.snapshot.wakeups > before)

                let intake = PaymentIntake(client: client, logger: TestEnvironment.logger)
                let payment = Payment(amountMinor: 100, currency: "EUR", debtor: "acct_1", creditor: "acct_2")
                _ = try await intake.create(PaymentRequest(payment: payment), idempotencyKey: "\(prefix)-api")
                try await TestEnvironment.eventually("the posted payment succeeds", timeout: .seconds(10)) {
                    try await Self.succeeded(prefix) == 6
                }
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// The listener's connection is terminated (as a failover or an operator would): it
        /// connects again, and payments announced after that are still claimed at once.
        @Test func aListenerCutOffListensAgain() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("wakeup-again")
            let metrics = WorkerMetrics()
            try await Self.withListeningPool("wakeup-again", metrics: metrics) { client in
                let first = Set(try await Self.listenerBackends())
                try #require(!first.isEmpty, "a listening backend")
                for pid in first {
                    _ = try await client.query("SELECT pg_terminate_backend(\(Int32(pid)))", logger: TestEnvironment.logger).collect()
                }
                // The fault happened: the backend is gone and another has taken its place.
                try await TestEnvironment.eventually("a new listening backend", timeout: .seconds(10)) {
                    let now = Set(try await Self.listenerBackends())
                    return !now.isEmpty && now.isDisjoint(with: first) && metrics.snapshot.listening
                }
                try await Task.sleep(for: .milliseconds(300))
                try await Integration.WorkerTests.enqueue(5, prefix: prefix)
                try await TestEnvironment.eventually("the enqueued payments succeed", timeout: .seconds(10)) {
                    try await Self.succeeded(prefix) == 5
                }
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// An announcement that fails (a cancel, a timeout landing on it) fails its intake:
        /// it runs last before COMMIT, and PostgreSQL answers the COMMIT of a transaction an
        /// error aborted with ROLLBACK and no error, so an unread failure would be a 201
        /// for a payment never written.
        @Test func aFailedAnnouncementFailsItsIntakeAndWritesNothing() async throws {
            try await TestEnvironment.migrate()
            let prefix = TestEnvironment.uniquePrefix("announce-fails")
            // Fails as it runs, not as it is planned: random() is not folded.
            let failing = WorkAnnouncer(interval: .zero, statement: "SELECT pg_notify('payment_queue', ''), 1 / (random() * 0)::int")
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                var intake = PaymentIntake(client: client, logger: TestEnvironment.logger)
                intake.announcer = failing
                let payment = Payment(amountMinor: 100, currency: "EUR", debtor: "acct_1", creditor: "acct_2")
                await #expect(throws: (any Error).self) {
                    _ = try await intake.create(PaymentRequest(payment: payment), idempotencyKey: "\(prefix)-api")
                }
                var enqueuer = Enqueuer(client: client, logger: TestEnvironment.logger, batchSize: 10, connections: 1, timeout: .seconds(5))
                enqueuer.announcer = failing
                await #expect(throws: (any Error).self) {
                    _ = try await enqueuer.enqueueGenerated(count: 10, keyPrefix: prefix, seed: 1, progress: { _ in })
                }
            }
            let written = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_keys WHERE idempotency_key LIKE \(prefix + "-%")")
            #expect(written == 0)
        }

        /// Pointed at a standby (NOTIFY is not replicated), the listener ends at once and
        /// says what to give instead.
        /// (Pointed at a transaction pooler, its check finds no channel once the pooler
        /// serves a ping on another server connection than the LISTEN's: only under load, so
        /// not tested here; the README says the DSN is the primary itself.)
        @Test func aListenerThatCannotHearSaysSo() async throws {
            try await TestEnvironment.migrate()
            let listener = QueueListener(url: TestEnvironment.replicaURLs[0], doorbell: Doorbell(), metrics: WorkerMetrics(),
                                         logger: TestEnvironment.logger)
            do {
                try await listener.listenOnce()
                Issue.record("listened on a standby without an error")
            } catch {
                #expect("\(error)".contains("reaches a standby"), "\(error)")
            }
        }
    }
}
