import Logging
import PaymentsCore
import PostgresNIO

/// The real service behind the routes: intake and the queue through pgbouncer-write,
/// status reads through the read router, figures from the worker pool and the gateway.
public struct LivePaymentsAPI: PaymentsAPI {
    public let database: Database
    public let intake: PaymentIntake
    public let reads: PaymentReads
    public let router: ReadRouter
    public let metrics: WorkerMetrics
    public let gateway: (any PaymentGateway)?
    let store: JobStore
    /// After the last request's deadline (`charge_deadline_at`), before a cancelled
    /// payment's "no charge" is trusted: the margin for clocks and in-flight writes.
    let cancelMargin: Duration
    let currencyCache: CurrencyCache
    let logger: Logger

    public init(database: Database, readFallback: Bool, metrics: WorkerMetrics, gateway: (any PaymentGateway)?,
                cancelMargin: Duration = WorkerConfiguration().settleMargin,
                giveUpAfterSeconds: Int32 = PaymentRequest.defaultGiveUpAfterSeconds, logger: Logger) {
        self.database = database
        var intake = PaymentIntake(client: database.write, logger: logger)
        intake.giveUpAfterSeconds = giveUpAfterSeconds
        self.intake = intake
        self.router = ReadRouter(database: database, fallback: readFallback, logger: logger)
        self.reads = PaymentReads(router: router)
        self.metrics = metrics
        self.gateway = gateway
        self.store = JobStore(client: database.write, logger: logger)
        self.cancelMargin = cancelMargin
        self.currencyCache = CurrencyCache(client: database.write, logger: logger)
        self.logger = logger
    }

    /// How long a request may wait on pgbouncer-write, a connection included: the HTTP
    /// server's graceful drain waits for every handler (see `withDeadline`). Past it the
    /// client gets 503; a POST that timed out may have committed, and its retry with the
    /// same key answers the same payment.
    static let writeDeadline: Duration = .seconds(10)

    func withinWriteDeadline<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withDeadline(Self.writeDeadline, role: "pgbouncer-write", endpoint: database.writeURL.endpoint, operation)
    }

    public func currencies() async throws -> Set<String> {
        let cache = currencyCache
        return try await withinWriteDeadline { try await cache.get() }
    }

    public func create(_ request: PaymentRequest, idempotencyKey: String) async throws -> CreateResult {
        let intake = self.intake
        return try await withinWriteDeadline { try await intake.create(request, idempotencyKey: idempotencyKey) }
    }

    public func payment(id: Int64, freshnessToken: String?) async throws -> Routed<Job?> {
        try await reads.job(id: id, freshnessToken: freshnessToken)
    }

    public func cancel(id: Int64) async throws -> CancelResult? {
        let (store, intake, margin) = (self.store, self.intake, cancelMargin)
        let (outcome, token) = try await withinWriteDeadline { () -> (JobStore.CancelOutcome?, String) in
            (try await store.cancel([id], margin: margin)[id], try await intake.currentLSN())
        }
        guard let outcome else { return nil }
        // Read back at least as fresh as the cancel (a replica that replayed it, or the primary).
        let job = try? await reads.job(id: id, freshnessToken: token).value
        return CancelResult(outcome: outcome, job: job ?? nil)
    }

    public func stats() async throws -> ServerStats {
        let (router, logger) = (self.router, self.logger)
        return ServerStats(
            queue: try await withinWriteDeadline { try await QueueStats.collect(router, logger: logger) },
            worker: .init(metrics.snapshot, latencyPercentiles: metrics.latencyPercentiles([50, 95, 99]),
                          stagePercentiles: metrics.stagePercentiles([50, 95, 99])),
            readsServedBy: router.counts.snapshot,
            gateway: gateway?.counts.map(ServerStats.Gateway.init))
    }

    public func readinessProblems() async -> [String] {
        var problems: [String] = []
        for (name, client) in [("pgbouncer-write", database.write), ("pgbouncer-read", database.read)] {
            do {
                try await withTimeout(.seconds(2)) { [logger] in _ = try await client.query("SELECT 1", logger: logger).collect() }
            } catch {
                problems.append("\(name): \(describe(error))")
            }
        }
        return problems
    }
}
