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
                try await client.query("SELECT pid FROM pg_stat_activity WHERE application_name = \(QueueListener.applicationName)",
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
                let first = try await Self.listenerBackends()
                try #require(first.count == 1, "one listening backend: \(first)")
                _ = try await client.query("SELECT pg_terminate_backend(\(Int32(first[0])))", logger: TestEnvironment.logger).collect()
                // The fault happened: the backend is gone and another has taken its place.
                try await TestEnvironment.eventually("a new listening backend", timeout: .seconds(10)) {
                    let now = try await Self.listenerBackends()
                    return now.count == 1 && now != first && metrics.snapshot.listening
                }
                try await Task.sleep(for: .milliseconds(300))
                try await Integration.WorkerTests.enqueue(5, prefix: prefix)
                try await TestEnvironment.eventually("the enqueued payments succeed", timeout: .seconds(10)) {
                    try await Self.succeeded(prefix) == 5
                }
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }
    }
}
