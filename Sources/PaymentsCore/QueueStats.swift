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
    }

    public var countsByState: [String: Int]
    public var finishedLastMinute: Int
    public var jobsPerSecondLastMinute: Double
    public var replicas: [Replica]
    public var countsServedBy: String

    enum CodingKeys: String, CodingKey {
        case countsByState = "counts_by_state", finishedLastMinute = "finished_last_minute"
        case jobsPerSecondLastMinute = "jobs_per_second_last_minute", replicas, countsServedBy = "counts_served_by"
    }

    /// Counts come from a replica (through pgbouncer-read, or the primary if that fails);
    /// replication state from the primary's pg_stat_replication.
    public static func collect(_ database: Database, logger: Logger) async throws -> QueueStats {
        let countsQuery: PostgresQuery = """
            SELECT current_setting('cluster_name'), s.state, COALESCE(c.n, 0)::int8,
                   (SELECT count(*) FROM payment_jobs WHERE finished_at > now() - interval '60 seconds')::int8
            FROM unnest(ARRAY['queued', 'running', 'succeeded', 'failed', 'cancelled']) AS s(state)
            LEFT JOIN (SELECT state, count(*) AS n FROM payment_jobs GROUP BY state) c ON c.state = s.state
            """
        var counts: [String: Int] = [:]
        var finished = 0
        var servedBy = ""
        func read(_ client: PostgresClient) async throws {
            for try await (node, state, n, recent) in try await client.query(countsQuery, logger: logger).decode((String, String, Int64, Int64).self) {
                counts[state] = Int(n)
                finished = Int(recent)
                servedBy = node
            }
        }
        do { try await read(database.read) } catch where isTransientDatabaseError(error) { try await read(database.write) }

        var replicas: [Replica] = []
        let replication: PostgresQuery = """
            SELECT application_name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8,
                   EXTRACT(EPOCH FROM replay_lag)::float8
            FROM pg_stat_replication ORDER BY application_name
            """
        for try await (name, state, bytes, seconds) in try await database.write.query(replication, logger: logger).decode((String, String, Int64?, Double?).self) {
            replicas.append(Replica(name: name, state: state, replayLagBytes: bytes, replayLagSeconds: seconds ?? 0))
        }
        return QueueStats(countsByState: counts, finishedLastMinute: finished, jobsPerSecondLastMinute: Double(finished) / 60,
                          replicas: replicas, countsServedBy: servedBy)
    }
}
