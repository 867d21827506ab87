import ArgumentParser
import Foundation
import Hummingbird
import Logging
import PaymentsCore
import PaymentsHTTP
import PaymentsSimulator

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "HTTP API and worker pool in one process (SIGTERM/SIGINT: graceful stop, exit 0).")

    @OptionGroup var db: DatabaseOptions

    @Option(help: "Address the HTTP API listens on.") var host: String = "127.0.0.1"
    @Option(help: "Port of the HTTP API.") var port: Int = 8080

    @Option(help: "Jobs in flight at once.") var concurrency: Int = 1_000
    @Option(name: .customLong("batch-size"), help: "Most jobs per claim statement.") var batchSize: Int = 500
    @Option(help: "Lease length in seconds (heartbeat every sixth of it).") var lease: Double = 30
    @Option(name: .customLong("gateway-timeout"), help: "Seconds one gateway call may take before its outcome counts as unknown and the job is retried with the same key (default: half the lease; must be below it).")
    var gatewayTimeout: Double?
    @Option(name: .customLong("shutdown-timeout"), help: "Seconds in-flight jobs get to finish after SIGTERM before they are released.")
    var shutdownTimeout: Double = 10
    @Option(name: .customLong("write-pool"), help: "Connections to pgbouncer-write.") var writePool: Int = 8
    @Option(name: .customLong("read-pool"), help: "Connections to pgbouncer-read.") var readPool: Int = 8
    @Flag(name: .customLong("no-workers"), help: "Serve the API only; claim no jobs.") var noWorkers = false
    @Option(name: .customLong("primary-dsn"), help: "The primary itself, no pooler (env PRIMARY_DSN; HA: HAProxy's write port): the claimer LISTENs there for new payments and claims them at once instead of at its next poll. Default: the local topology's primary when the write DSN is the local default; `none`: polling alone.")
    var primaryDSN: String?
    @Flag(inversion: .prefixedNo, help: "When the read path fails, read from the primary through pgbouncer-write (env READ_FALLBACK=0 turns it off).")
    var readFallback: Bool = ProcessInfo.processInfo.environment["READ_FALLBACK"] != "0"

    @Option(name: .customLong("statement-timeout"), help: "Seconds a worker statement may run, enforced by client and server (default: 15 or half the lease, whichever is less; at most half the lease).")
    var statementTimeout: Double?
    @Option(name: .customLong("max-lease-losses"), help: "Lost leases after which a job is settled with the gateway (reconciling) before it runs again.")
    var maxLeaseLosses: Int = 3
    @Option(name: .customLong("give-up-after"), help: "Retry budget in seconds of each payment this serve takes in that names none (give_up_after_seconds wins): until then our own faults only delay it; past it, one the gateway proves uncharged fails (budget_exhausted).")
    var giveUpAfter: Int = Int(PaymentRequest.defaultGiveUpAfterSeconds)

    @Option(name: .customLong("gateway-url"), help: "External gateway (`payments gateway`, env GATEWAY_URL), shared by every serve. Without it the simulated gateway runs in-process (benchmarks; a single serve).")
    var gatewayURL: String? = ProcessInfo.processInfo.environment["GATEWAY_URL"].flatMap { $0.isEmpty ? nil : $0 }
    @Option(name: .customLong("gateway-connections"), help: "Keep-alive HTTP/1.1 connections for the external gateway's charges, opened as calls need them (past \(HTTPGateway.defaultPipelineAbove) calls in flight, --gateway-pipeline to a connection); beyond them calls are pipelined (default: one per job in flight, up to \(ServerSettings.maxDefaultGatewayConnections); a provider that answers a connection's calls one after the other needs about rate x latency).")
    var gatewayConnections: Int?
    @Option(name: .customLong("gateway-pipeline"), help: "With more than \(HTTPGateway.defaultPipelineAbove) charges in flight, charges written to one gateway connection before the next is used, so a claim's calls go out and come back in a few writes and reads (default: \(ServerSettings.defaultGatewayPipeline), at most \(ServerSettings.maxGatewayPipeline)); 1 for a provider that answers a connection's calls one after the other.")
    var gatewayPipeline: Int = ServerSettings.defaultGatewayPipeline

    @Option(name: .customLong("gateway-latency-ms"), help: "Simulated gateway: mean latency.") var gatewayLatencyMs: Double = 20
    @Option(name: .customLong("gateway-jitter-ms"), help: "Simulated gateway: latency jitter, +/- (default: half the latency).")
    var gatewayJitterMs: Double?
    @Option(name: .customLong("gateway-transient-failure-rate"), help: "Simulated gateway: share of calls that time out (0-1).")
    var gatewayTransientFailureRate: Double = 0
    @Option(name: .customLong("gateway-decline-rate"), help: "Simulated gateway: share of payments declined (0-1).")
    var gatewayDeclineRate: Double = 0
    @Option(help: "Seed of the workers' retry jitter (a function of seed, key and attempt) and of the simulated gateway's draws.") var seed: UInt64 = 1
    @Option(name: .customLong("gateway-journal"), help: "File of the in-process gateway's accepted charges, read at start so its charges survive a restart of this serve. Its deduplication is per process: several serves need `payments gateway` (--gateway-url).")
    var gatewayJournal: String?

    @Option(name: .customLong("haproxy-stats"), help: "The dashboard's view of HAProxy: its stats page as CSV (env HAPROXY_STATS_URL), e.g. http://127.0.0.1:8404/;csv.")
    var haproxyStats: String? = ProcessInfo.processInfo.environment["HAPROXY_STATS_URL"].flatMap { $0.isEmpty ? nil : $0 }
    @Option(name: .customLong("backup-repo"), help: "The dashboard's last backup: a pgBackRest repository this process can read (env BACKUP_REPO_DIR; scripts/topology env prints it).")
    var backupRepo: String? = ProcessInfo.processInfo.environment["BACKUP_REPO_DIR"].flatMap { $0.isEmpty ? nil : $0 }
    @Option(name: .customLong("patroni-url"), help: "HA mode: a Patroni REST API the dashboard asks for the cluster (repeatable; env PATRONI_URLS, space-separated).")
    var patroniURLs: [String] = (ProcessInfo.processInfo.environment["PATRONI_URLS"] ?? "").split(separator: " ").map(String.init)

    @Option(name: .customLong("retry-base-ms"), help: "Backoff base: the n-th retry waits up to base * 2^(n-1).") var retryBaseMs: Double = 500
    @Option(name: .customLong("retry-cap-ms"), help: "Backoff cap.") var retryCapMs: Double = 60_000
    @Option(name: .customLong("stats-interval"), help: "Seconds between progress log lines.") var statsInterval: Double = 5

    /// Every flag checked here, so any bad value is a usage error (exit 64) before anything starts.
    func validate() throws {
        // The flags are read into the settings once; the settings check themselves
        // (ServerSettings, WorkerConfiguration, the simulator's configuration).
        _ = try usageChecked { try settings().validated() }
        _ = try usageChecked { try workerConfiguration().validated() }
        _ = try usageChecked { try simulatedGateway().validated() }
    }

    func settings() throws -> ServerSettings {
        let urls = try db.urls()
        var settings = ServerSettings(writeURL: urls.write, readURL: urls.read)
        settings.host = host
        settings.port = port
        settings.writePool = writePool
        settings.readPool = readPool
        settings.readFallback = readFallback
        settings.gatewayURL = gatewayURL
        settings.gatewayConnections = gatewayConnections
        settings.gatewayPipeline = gatewayPipeline
        settings.giveUpAfterSeconds = Int32(clamping: giveUpAfter)
        // On the local topology's default poolers, what `scripts/topology env` exports is
        // known without it (a bare `payments serve` shows the whole topology).
        let local = ConnectionSettings.observabilityDefaults(write: urls.write, read: urls.read)
        settings.haproxyStatsURL = haproxyStats ?? local?.haproxyStatsURL
        settings.patroniURLs = patroniURLs
        settings.backupRepository = backupRepo
        // Credentials from the environment only: a flag would show in `ps`.
        let environment = ProcessInfo.processInfo.environment
        if let user = environment["PGBOUNCER_STATS_USER"], !user.isEmpty {
            settings.poolerStatsUser = user
            settings.poolerStatsPassword = environment["PGBOUNCER_STATS_PASSWORD"]
        } else {
            settings.poolerStatsUser = local?.poolerStatsUser
            settings.poolerStatsPassword = local?.poolerStatsPassword
        }
        settings.workers = noWorkers ? nil : workerConfiguration()
        // Only a claimer listens: an API-only serve ignores it (a bad value included).
        if !noWorkers { settings.primaryURL = try ConnectionSettings.primary(flag: primaryDSN, environment: environment, write: urls.write) }
        return settings  // validated by validate() (usage errors) and by buildApplication
    }

    /// The worker flags, read once (checked by `WorkerConfiguration.validated`, with
    /// --no-workers too: a bad flag is refused whatever else is given).
    func workerConfiguration() -> WorkerConfiguration {
        var worker = WorkerConfiguration()
        worker.concurrency = concurrency
        worker.batchSize = batchSize
        worker.lease = .seconds(fractional: lease)
        worker.shutdownTimeout = .seconds(fractional: shutdownTimeout)
        worker.gatewayTimeout = gatewayTimeout.map { .seconds(fractional: $0) }
        worker.statementTimeout = statementTimeout.map { .seconds(fractional: $0) }
        worker.maxLeaseLosses = maxLeaseLosses
        worker.jitterSeed = seed
        worker.backoff = Backoff(base: .seconds(fractional: retryBaseMs / 1000), cap: .seconds(fractional: retryCapMs / 1000))
        worker.statsInterval = .seconds(fractional: statsInterval)
        return worker
    }

    /// The in-process simulated gateway, used without --gateway-url.
    func simulatedGateway() -> SimulatedGateway.Configuration {
        SimulatedGateway.Configuration(
            latencyMillis: gatewayLatencyMs, jitterMillis: gatewayJitterMs ?? gatewayLatencyMs / 2,
            transientFailureRate: gatewayTransientFailureRate, declineRate: gatewayDeclineRate,
            seed: seed, journalPath: gatewayJournal)
    }

    /// The composition root's one choice: the external gateway's client, else the simulator.
    func gateway(_ settings: ServerSettings, logger: Logger) throws -> any PaymentGateway {
        if let client = externalGateway(settings, logger: logger) { return client }
        // Its deduplication is this process's alone (its journal is locked to it): a second
        // serve on the same queue would charge a key again.
        logger.warning("the in-process simulated gateway is for one serve process only: several serves share `payments gateway` through --gateway-url")
        return try SimulatedGateway(simulatedGateway())
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.serve")
            let settings = try settings()
            OpenFileLimit.raiseToHardLimit()
            let app = try buildApplication(settings, gateway: try gateway(settings, logger: logger), logger: logger)
            do {
                try await app.runService()
            } catch where isAddressInUse(error) {
                throw PaymentsError.portInUse(host: settings.host, port: settings.port)
            }
            logger.info("serve stopped cleanly")
        }
    }
}
