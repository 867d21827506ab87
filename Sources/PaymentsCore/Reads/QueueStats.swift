import Foundation
import Logging
import PostgresNIO

/// A summary of the queue and the topology, for `GET /v1/stats` and `payments status`.
public struct QueueStats: Sendable, Codable, Equatable {
    public struct Replica: Sendable, Codable, Equatable {
        public var name: String
        public var state: String
        public var replayLagBytes: Int64?
        public var replayLagSeconds: Double?
        enum CodingKeys: String, CodingKey {
            case name, state
            case replayLagBytes = "replay_lag_bytes", replayLagSeconds = "replay_lag_seconds"
        }

        public init(name: String, state: String, replayLagBytes: Int64?, replayLagSeconds: Double?) {
            self.name = name
            self.state = state
            self.replayLagBytes = replayLagBytes
            self.replayLagSeconds = replayLagSeconds
        }
    }

    /// A payment held for an operator: `reconciling`, not asked about again until one acts.
    public struct Held: Sendable, Codable, Equatable {
        public var id: Int64
        public var reason: HeldReason
        public var since: String
        public var detail: String?
    }

    /// Jobs per state; `held` counts the reconciling ones held for an operator.
    public var countsByState: [String: Int]
    /// Failed payments by reason (the closed set; `unrecorded` for those failed before
    /// reasons were kept).
    public var failedByReason: [String: Int]
    /// The first held payments (up to 20).
    public var held: [Held]
    public var finishedLastMinute: Int
    public var jobsPerSecondLastMinute: Double
    public var replicas: [Replica]
    public var countsServedBy: String

    public init(countsByState: [String: Int], failedByReason: [String: Int] = [:], held: [Held] = [], finishedLastMinute: Int,
                jobsPerSecondLastMinute: Double, replicas: [Replica], countsServedBy: String) {
        self.countsByState = countsByState
        self.failedByReason = failedByReason
        self.held = held
        self.finishedLastMinute = finishedLastMinute
        self.jobsPerSecondLastMinute = jobsPerSecondLastMinute
        self.replicas = replicas
        self.countsServedBy = countsServedBy
    }

    enum CodingKeys: String, CodingKey {
        case countsByState = "counts_by_state", finishedLastMinute = "finished_last_minute"
        case failedByReason = "failed_by_reason", held
        case jobsPerSecondLastMinute = "jobs_per_second_last_minute", replicas, countsServedBy = "counts_served_by"
    }

    public func count(_ state: JobState) -> Int { countsByState[state.rawValue, default: 0] }

    /// Counts through the read router (a replica, or the primary if the read path fails
    /// and fallback is on); replication state from the primary's pg_stat_replication.
    public static func collect(_ router: ReadRouter, logger: Logger) async throws -> QueueStats {
        let counts = try await counts(router)
        let replicas = try await replication(router.database, logger: logger)
        let held = (counts.value.byState["held"] ?? 0) > 0 ? try await heldPayments(router) : []
        return QueueStats(countsByState: counts.value.byState, failedByReason: counts.value.failedByReason, held: held,
                          finishedLastMinute: counts.value.finished,
                          jobsPerSecondLastMinute: Double(counts.value.finished) / 60,
                          replicas: replicas, countsServedBy: counts.source.node)
    }

    /// Jobs per state, and those finished in the last minute. Counts the queue (the
    /// backlog) and sums the history's totals: longer than a single-row read when the
    /// backlog is large, never a scan of the history.
    public static func counts(_ router: ReadRouter) async throws -> Routed<(byState: [String: Int], failedByReason: [String: Int], finished: Int)> {
        try await router.read(ReadStatements.queueCounts(), timeout: router.timeout * 5) { rows in
            var byState: [String: Int] = [:]
            var failedByReason = Dictionary(uniqueKeysWithValues: FailureReason.allCases.map { ($0.rawValue, 0) })
            var finished = 0
            for row in rows {
                let name = try row[ReadNode.columnCount].decode(String.self)
                let n = Int(try row[ReadNode.columnCount + 1].decode(Int64.self))
                if name.hasPrefix("failed:") {
                    failedByReason[String(name.dropFirst("failed:".count)), default: 0] += n
                } else {
                    byState[name] = n
                }
                if let f = try row[ReadNode.columnCount + 2].decode(Int64?.self) { finished = Int(f) }
            }
            let reasoned = failedByReason.values.reduce(0, +)
            if byState[JobState.failed.rawValue, default: 0] > reasoned {
                failedByReason["unrecorded"] = byState[JobState.failed.rawValue, default: 0] - reasoned
            }
            return (byState, failedByReason, finished)
        }
    }

    /// The first held payments, for `payments status` and /v1/stats.
    public static func heldPayments(_ router: ReadRouter, limit: Int = 20) async throws -> [Held] {
        try await router.read(ReadStatements.heldPayments(limit: limit)) { rows in
            var held: [Held] = []
            for row in rows {
                guard let id = try row[ReadNode.columnCount].decode(Int64?.self) else { continue }
                held.append(Held(id: id, reason: try row[ReadNode.columnCount + 1].decode(HeldReason.self),
                                 since: try row[ReadNode.columnCount + 2].decode(String.self),
                                 detail: try row[ReadNode.columnCount + 3].decode(String?.self)))
            }
            return held
        }.value
    }

    /// Running jobs per lease owner (each a `serve` process: host/pid/tag).
    public static func leaseOwners(_ router: ReadRouter) async throws -> [String: Int] {
        try await router.read(ReadStatements.leaseOwners()) { rows in
            var owners: [String: Int] = [:]
            for row in rows {
                guard let owner = try row[ReadNode.columnCount].decode(String?.self) else { continue }
                owners[owner] = Int(try row[ReadNode.columnCount + 1].decode(Int64?.self) ?? 0)
            }
            return owners
        }.value
    }

    /// The primary's replicas as it sees them (through pgbouncer-write, never routed).
    /// Needs no table of the app: it answers before the first migration too.
    public static func replication(_ database: Database, logger: Logger) async throws -> [Replica] {
        var replicas: [Replica] = []
        let rows = try await database.write.query(ReadStatements.replication, logger: logger)
        for try await (name, state, bytes, seconds) in rows.decode((String, String, Int64?, Double?).self) {
            replicas.append(Replica(name: name, state: state, replayLagBytes: bytes, replayLagSeconds: seconds ?? 0))
        }
        return replicas
    }
}
