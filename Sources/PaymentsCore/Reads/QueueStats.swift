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

    public var countsByState: [String: Int]
    public var finishedLastMinute: Int
    public var jobsPerSecondLastMinute: Double
    public var replicas: [Replica]
    public var countsServedBy: String

    public init(countsByState: [String: Int], finishedLastMinute: Int, jobsPerSecondLastMinute: Double,
                replicas: [Replica], countsServedBy: String) {
        self.countsByState = countsByState
        self.finishedLastMinute = finishedLastMinute
        self.jobsPerSecondLastMinute = jobsPerSecondLastMinute
        self.replicas = replicas
        self.countsServedBy = countsServedBy
    }

    enum CodingKeys: String, CodingKey {
        case countsByState = "counts_by_state", finishedLastMinute = "finished_last_minute"
        case jobsPerSecondLastMinute = "jobs_per_second_last_minute", replicas, countsServedBy = "counts_served_by"
    }

    public func count(_ state: JobState) -> Int { countsByState[state.rawValue, default: 0] }

    /// Counts through the read router (a replica, or the primary if the read path fails
    /// and fallback is on); replication state from the primary's pg_stat_replication.
    public static func collect(_ router: ReadRouter, logger: Logger) async throws -> QueueStats {
        let counts = try await counts(router)
        let replicas = try await replication(router.database, logger: logger)
        return QueueStats(countsByState: counts.value.byState, finishedLastMinute: counts.value.finished,
                          jobsPerSecondLastMinute: Double(counts.value.finished) / 60,
                          replicas: replicas, countsServedBy: counts.source.node)
    }

    /// Jobs per state, and those finished in the last minute. Counts the queue (the
    /// backlog) and sums the history's totals: longer than a single-row read when the
    /// backlog is large, never a scan of the history.
    public static func counts(_ router: ReadRouter) async throws -> Routed<(byState: [String: Int], finished: Int)> {
        try await router.read(ReadStatements.queueCounts(), timeout: router.timeout * 5) { rows in
            var byState: [String: Int] = [:]
            var finished = 0
            for row in rows {
                let state = try row[ReadNode.columnCount].decode(JobState.self)
                byState[state.rawValue] = Int(try row[ReadNode.columnCount + 1].decode(Int64.self))
                finished = Int(try row[ReadNode.columnCount + 2].decode(Int64.self))
            }
            return (byState, finished)
        }
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
