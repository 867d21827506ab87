import PaymentsCore

/// What the dashboard shows now: one tile per component, the counts, the events. Sent
/// whole every second (a few KB): the page keeps no state it could get wrong.
public struct DashboardState: Sendable, Encodable, Equatable {
    /// A component's tile. `status`: up, down, unknown (its source did not answer) or
    /// not_configured (the server was not told where it is).
    public struct Tile: Sendable, Encodable, Equatable {
        public var name: String
        public var kind: String
        public var status: String
        public var role: String?
        public var detail: String?
        public var lagBytes: Int64?
        public var lagSeconds: Double?
        public var backends: [HAProxyServer]?
        public var pools: [PoolerPool]?
        enum CodingKeys: String, CodingKey {
            case name, kind, status, role, detail, backends, pools
            case lagBytes = "lag_bytes", lagSeconds = "lag_seconds"
        }

        public init(name: String, kind: String, status: String, role: String? = nil, detail: String? = nil) {
            self.name = name
            self.kind = kind
            self.status = status
            self.role = role
            self.detail = detail
        }
    }

    public struct Patroni: Sendable, Encodable, Equatable {
        public var leader: String?
        public var syncStandby: String?
        public var timeline: Int?
        public var members: [PatroniCluster.Member]
        enum CodingKeys: String, CodingKey { case leader, members, timeline, syncStandby = "sync_standby" }
    }

    public struct Event: Sendable, Encodable, Equatable {
        public var at: Double
        public var text: String
    }

    public struct Problem: Sendable, Encodable, Equatable {
        public var at: Double
        public var source: String
        public var message: String
    }

    /// Seconds since 1970 of the collection.
    public var at: Double
    public var mode: String
    public var tiles: [Tile]
    public var patroni: Patroni?
    public var countsByState: [String: Int]
    public var inFlight: Int
    public var events: [Event]
    public var errors: [Problem]

    enum CodingKeys: String, CodingKey {
        case at, mode, tiles, patroni, events, errors
        case countsByState = "counts_by_state", inFlight = "in_flight"
    }
}

/// One second of the time series.
public struct DashboardPoint: Sendable, Encodable, Equatable {
    public var at: Double
    /// This server's workers, per second.
    public var claimed, succeeded, failed, retried: Double
    /// Every server's jobs finished per second (from the database's counts).
    public var finishedAll: Double?
    public var inFlight: Int
    /// Enqueue-to-completion of the jobs this server finished in the second, seconds.
    public var latencyP50, latencyP99: Double?
    /// Reads answered per node per second (this server's reads).
    public var readsPerNode: [String: Double]
    /// Replay lag per replica, seconds.
    public var lagSeconds: [String: Double]

    enum CodingKeys: String, CodingKey {
        case at, claimed, succeeded, failed, retried
        case finishedAll = "finished_all", inFlight = "in_flight", latencyP50 = "latency_p50", latencyP99 = "latency_p99"
        case readsPerNode = "reads_per_node", lagSeconds = "lag_seconds"
    }
}

/// `GET /v1/dashboard` and the stream's first event: the state and the series so far.
public struct DashboardSnapshot: Sendable, Encodable {
    public var state: DashboardState?
    public var series: [DashboardPoint]
    /// Seconds between collections.
    public var interval: Double
}

/// Each later event of the stream: the state and the newest point.
public struct DashboardTick: Sendable, Encodable {
    public var state: DashboardState?
    public var point: DashboardPoint
}
