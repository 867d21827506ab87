import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Metrics
import PaymentsCore
import Prometheus
import ServiceLifecycle
import Synchronization

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "HTTP API and worker pool in one process (SIGTERM/SIGINT: graceful stop, exit 0).")

    @OptionGroup var db: DatabaseOptions

    @Option(help: "Address the HTTP API listens on.") var host: String = "127.0.0.1"
    @Option(help: "Port of the HTTP API.") var port: Int = 8080

    @Option(help: "Jobs in flight at once.") var concurrency: Int = 1_000
    @Option(name: .customLong("batch-size"), help: "Most jobs per claim statement.") var batchSize: Int = 500
    @Option(help: "Lease length in seconds (heartbeat every third of it).") var lease: Double = 30
    @Option(name: .customLong("shutdown-timeout"), help: "Seconds in-flight jobs get to finish after SIGTERM before they are released.")
    var shutdownTimeout: Double = 10
    @Option(name: .customLong("write-pool"), help: "Connections to pgbouncer-write.") var writePool: Int = 8
    @Option(name: .customLong("read-pool"), help: "Connections to pgbouncer-read.") var readPool: Int = 8
    @Flag(name: .customLong("no-workers"), help: "Serve the API only; claim no jobs.") var noWorkers = false
    @Flag(inversion: .prefixedNo, help: "When the read path fails, read from the primary through pgbouncer-write (env READ_FALLBACK=0 turns it off).")
    var readFallback: Bool = ProcessInfo.processInfo.environment["READ_FALLBACK"] != "0"

    @Option(name: .customLong("gateway-latency-ms"), help: "Simulated gateway: mean latency.") var gatewayLatencyMs: Double = 20
    @Option(name: .customLong("gateway-jitter-ms"), help: "Simulated gateway: latency jitter, +/- (default: half the latency).")
    var gatewayJitterMs: Double?
    @Option(name: .customLong("gateway-transient-failure-rate"), help: "Simulated gateway: share of calls that time out (0-1).")
    var gatewayTransientFailureRate: Double = 0
    @Option(name: .customLong("gateway-decline-rate"), help: "Simulated gateway: share of payments declined (0-1).")
    var gatewayDeclineRate: Double = 0
    @Option(help: "Seed of the simulated gateway's draws.") var seed: UInt64 = 1
    @Option(name: .customLong("gateway-journal"), help: "File of the simulated gateway's accepted charges, shared by every serve using it (survives restarts).")
    var gatewayJournal: String?

    @Option(name: .customLong("retry-base-ms"), help: "Backoff base: the n-th retry waits up to base * 2^(n-1).") var retryBaseMs: Double = 500
    @Option(name: .customLong("retry-cap-ms"), help: "Backoff cap.") var retryCapMs: Double = 60_000
    @Option(name: .customLong("stats-interval"), help: "Seconds between progress log lines.") var statsInterval: Double = 5

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be from 1 to 65535, got \(port)") }
        guard (1...64).contains(writePool), (1...64).contains(readPool) else { throw ValidationError("--write-pool and --read-pool must be from 1 to 64") }
        guard retryBaseMs > 0, retryCapMs >= retryBaseMs, retryCapMs <= 3_600_000 else {
            throw ValidationError("--retry-base-ms must be > 0 and <= --retry-cap-ms (at most 3,600,000)")
        }
        guard statsInterval >= 0.1 else { throw ValidationError("--stats-interval must be at least 0.1") }
        guard lease.isFinite, shutdownTimeout.isFinite else { throw ValidationError("--lease and --shutdown-timeout must be numbers") }
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.serve")
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

            var worker = WorkerConfiguration()
            worker.concurrency = concurrency
            worker.batchSize = batchSize
            worker.lease = .milliseconds(Int64(lease * 1000))
            worker.shutdownTimeout = .milliseconds(Int64(shutdownTimeout * 1000))
            worker.backoff = Backoff(base: .milliseconds(Int64(retryBaseMs)), cap: .milliseconds(Int64(retryCapMs)))
            worker.statsInterval = .milliseconds(Int64(statsInterval * 1000))
            worker = try worker.validated()
            let gateway = try SimulatedGateway(.init(
                latencyMillis: gatewayLatencyMs, jitterMillis: gatewayJitterMs ?? gatewayLatencyMs / 2,
                transientFailureRate: gatewayTransientFailureRate, declineRate: gatewayDeclineRate,
                seed: seed, journalPath: gatewayJournal))

            let database = try db.makeDatabase(logger: logger, writePool: writePool, readPool: readPool)
            let metrics = WorkerMetrics()
            let pool = try WorkerPool(store: JobStore(client: database.write, logger: logger), gateway: gateway,
                                      configuration: worker, metrics: metrics, logger: logger)
            let service = PaymentService(database: database, readFallback: readFallback, logger: logger)
            let currencyCache = CurrencyCache(client: database.write, logger: logger)

            let router = Router(context: BasicRequestContext.self)
            APIRoutes(service: service, metrics: metrics, gateway: gateway, registry: registry,
                      openAPI: try Self.openAPIDocument(), currencies: { try await currencyCache.get() }).register(on: router)
            let app = Application(
                responder: JSONErrorResponder(inner: router.buildResponder()),
                configuration: .init(address: .hostname(host, port: port), serverName: "payments"),
                onServerRunning: { _ in logger.info("HTTP API listening", metadata: ["address": "http://\(host):\(port)"]) },
                logger: logger)

            // Shutdown runs in reverse: the HTTP server stops first, then the worker pool
            // finishes or releases its jobs, and the pools close last.
            var services: [any Service] = [database.write, database.read]
            if !noWorkers { services.append(pool) }
            services.append(app)
            let group = ServiceGroup(configuration: .init(
                services: services.map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                cancellationSignals: [],
                logger: logger))
            logger.info("serve starting", metadata: [
                "write": "\(database.writeURL)", "read": "\(database.readURL)", "workers": "\(!noWorkers)",
                "concurrency": "\(concurrency)", "read_fallback": "\(readFallback)",
            ])
            try await group.run()
            logger.info("serve stopped cleanly")
        }
    }

    static func openAPIDocument() throws -> Data {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
            throw PaymentsError.invalidOption("openapi.yaml is missing from the payments bundle")
        }
        return try Data(contentsOf: url)
    }
}

