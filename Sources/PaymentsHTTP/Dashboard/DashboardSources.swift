import PaymentsCore

/// Where the dashboard looks, besides the database: given to `serve` by flags and the
/// environment (`scripts/topology env` prints them for the local topology). Each source
/// left out turns its tile to "not configured", never an error.
public struct DashboardSources: Sendable {
    /// HAProxy's stats page as CSV, e.g. http://127.0.0.1:8404/;csv
    public var haproxyStatsURL: String?
    /// Patroni REST APIs (HA mode); the first that answers speaks for the cluster.
    public var patroniURLs: [String]
    /// The poolers' admin consoles (the listeners of the write and read DSNs).
    public var poolers: [PgBouncerAdmin]
    /// The payment provider, when it is a separate process (`payments gateway`).
    public var gatewayURL: String?
    /// A pgBackRest repository this process can read (`--backup-repo`): the last backup.
    public var backupRepository: String?
    /// Seconds between collections: one per server, however many pages watch.
    public var interval: Duration

    public init(haproxyStatsURL: String? = nil, patroniURLs: [String] = [], poolers: [PgBouncerAdmin] = [],
                gatewayURL: String? = nil, backupRepository: String? = nil, interval: Duration = .seconds(1)) {
        self.backupRepository = backupRepository
        self.haproxyStatsURL = haproxyStatsURL
        self.patroniURLs = patroniURLs
        self.poolers = poolers
        self.gatewayURL = gatewayURL
        self.interval = interval
    }

    public var mode: String { patroniURLs.isEmpty ? "seed" : "ha" }
}
