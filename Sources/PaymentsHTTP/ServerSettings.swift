import Foundation
import PaymentsCore

/// Everything `payments serve` is told: where it listens, which poolers it uses, how its
/// workers and its simulated gateway behave. Parsed by the CLI, used by `buildApplication`.
public struct ServerSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var writeURL: DatabaseURL
    public var readURL: DatabaseURL
    public var writePool = 8
    public var readPool = 8
    /// Nil serves the API only (`--no-workers`).
    public var workers: WorkerConfiguration? = WorkerConfiguration()
    /// A direct connection to the primary (no pooler; in HA mode HAProxy's write port),
    /// where the claimer listens for announcements of new payments (`QueueListener`). Nil:
    /// polling alone.
    public var primaryURL: DatabaseURL?
    /// An external gateway (`payments gateway`, or any provider speaking its API): shared
    /// by every serve, as a real provider is.
    public var gatewayURL: String?
    /// Keep-alive HTTP/1.1 connections for the charges (ChargeConnections); nil: one per
    /// job in flight up to `maxDefaultGatewayConnections`. Beyond them calls are pipelined
    /// behind others: `payments gateway` processes a connection's pipelined calls together,
    /// so a few hundred connections carry any rate at any latency, and each connection
    /// fewer is fewer reads and writes on both sides (at latency 0: 16,663 jobs/s with 256,
    /// 12,648 with 4,096, docs/benchmarks.md). A provider that answers a connection's calls
    /// one after the other needs about rate x latency connections and `gatewayPipeline` 1.
    public var gatewayConnections: Int?
    public static let maxDefaultGatewayConnections = 256
    public var effectiveGatewayConnections: Int {
        gatewayConnections ?? min(Self.maxDefaultGatewayConnections, max(16, workers?.concurrency ?? 16))
    }
    /// Charges a connection takes before the next is used once more than
    /// `HTTPGateway.defaultPipelineAbove` are in flight: the calls of one claim go out, and
    /// come back, in a few writes and reads instead of one each (ChargeConnections).
    public var gatewayPipeline = Self.defaultGatewayPipeline
    public static let defaultGatewayPipeline = 8
    /// More would put that many calls behind a provider's hung request.
    public static let maxGatewayPipeline = 64
    /// The retry budget of a payment taken in by this server that names none (seconds).
    public var giveUpAfterSeconds: Int32 = PaymentRequest.defaultGiveUpAfterSeconds
    /// Read from the primary when the read path fails.
    public var readFallback = true
    /// What the dashboard (`GET /`) watches besides the database. The poolers' admin
    /// consoles are the listeners of `writeURL` and `readURL`, asked with these
    /// credentials (a `stats_users` entry of both poolers).
    public var haproxyStatsURL: String?
    public var patroniURLs: [String] = []
    public var poolerStatsUser: String?
    public var poolerStatsPassword: String?
    /// A pgBackRest repository on a path this server can read: the dashboard's last backup.
    public var backupRepository: String?

    /// The dashboard's sources from the settings above.
    public var dashboardSources: DashboardSources {
        DashboardSources(
            haproxyStatsURL: haproxyStatsURL, patroniURLs: patroniURLs,
            poolers: [("pgbouncer-write", writeURL), ("pgbouncer-read", readURL)].map { name, url in
                PgBouncerAdmin(name: name, host: url.host, port: url.port, user: poolerStatsUser, password: poolerStatsPassword)
            },
            gatewayURL: gatewayURL, backupRepository: backupRepository)
    }

    public init(writeURL: DatabaseURL, readURL: DatabaseURL) {
        self.writeURL = writeURL
        self.readURL = readURL
    }

    /// Range checks of every setting, so a bad flag is a usage error before anything starts.
    public func validated() throws(PaymentsError) -> Self {
        guard (1...65535).contains(port) else { throw .invalidOption("--port must be from 1 to 65535, got \(port)") }
        guard (1...64).contains(writePool), (1...64).contains(readPool) else {
            throw .invalidOption("--write-pool and --read-pool must be from 1 to 64")
        }
        let urls = [("--gateway-url", gatewayURL, "http://127.0.0.1:8090"), ("--haproxy-stats", haproxyStatsURL, "http://127.0.0.1:8404/;csv")]
            + patroniURLs.map { ("--patroni-url", Optional($0), "http://127.0.0.1:8008") }
        for case let (flag, url?, example) in urls {
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                throw .invalidOption("\(flag) must be an http(s) URL such as \(example), got '\(url)'")
            }
        }
        guard PaymentRequest.giveUpAfterRange.contains(giveUpAfterSeconds) else {
            throw .invalidOption("--give-up-after must be from 1 to 604,800 seconds (7 days)")
        }
        guard (1...10_000).contains(effectiveGatewayConnections) else { throw .invalidOption("--gateway-connections must be from 1 to 10,000") }
        guard (1...Self.maxGatewayPipeline).contains(gatewayPipeline) else {
            throw .invalidOption("--gateway-pipeline must be from 1 to \(Self.maxGatewayPipeline), got \(gatewayPipeline)")
        }
        var copy = self
        copy.workers = try workers?.validated()
        return copy
    }
}
