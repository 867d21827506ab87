import Foundation
import Logging
import PaymentsCore
import PostgresNIO

/// Progress of one run (the jobs whose keys start with a prefix), read from the primary,
/// plus the topology figures the demo reports: replica lag and server connections.
public struct RunProgress: Sendable, Equatable {
    public var total = 0
    public var queued = 0
    public var running = 0
    public var succeeded = 0
    public var failed = 0
    public var cancelled = 0
    public var reconciling = 0
    /// Attempts beyond the first, over all jobs of the run.
    public var retries = 0
    public var maxReplicaLagBytes: Int64 = 0
    public var maxReplicaLagSeconds: Double = 0
    /// db_user client backends on the primary right now (what pgbouncer-write holds open).
    public var serverConnections = 0
    public var terminal: Int { succeeded + failed + cancelled }

    public init() {}

    public static func sample(_ database: Database, keyPrefix: String, logger: Logger) async throws -> RunProgress {
        var p = RunProgress()
        let pattern = keyPrefix + "-%"
        let counts: PostgresQuery = """
            SELECT state, count(*)::int8, COALESCE(sum(GREATEST(attempt - 1, 0)), 0)::int8
            FROM payments_by_key(\(pattern)) GROUP BY state
            """
        for try await (state, n, retries) in try await database.write.query(counts, logger: logger).decode((JobState, Int64, Int64).self) {
            let n = Int(n)
            p.total += n
            p.retries += Int(retries)
            switch state {
            case .queued: p.queued = n
            case .running: p.running = n
            case .reconciling: p.reconciling = n
            case .succeeded: p.succeeded = n
            case .failed: p.failed = n
            case .cancelled: p.cancelled = n
            }
        }
        let topology: PostgresQuery = """
            SELECT (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user AND backend_type = 'client backend')::int8,
                   COALESCE((SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) FROM pg_stat_replication), 0)::int8,
                   COALESCE((SELECT max(EXTRACT(EPOCH FROM replay_lag)) FROM pg_stat_replication), 0)::float8
            """
        for try await (connections, lagBytes, lagSeconds) in try await database.write.query(topology, logger: logger).decode((Int64, Int64, Double).self) {
            p.serverConnections = Int(connections)
            p.maxReplicaLagBytes = lagBytes
            p.maxReplicaLagSeconds = lagSeconds
        }
        return p
    }
}

/// Throughput and latency of a finished run, from the jobs' own timestamps.
public struct RunFigures: Sendable, Equatable {
    public var jobs = 0
    public var seconds = 0.0
    public var jobsPerSecond: Double { seconds > 0 ? Double(jobs) / seconds : 0 }
    public var p50 = 0.0, p95 = 0.0, p99 = 0.0

    public init(jobs: Int = 0, seconds: Double = 0, p50: Double = 0, p95: Double = 0, p99: Double = 0) {
        self.jobs = jobs
        self.seconds = seconds
        self.p50 = p50
        self.p95 = p95
        self.p99 = p99
    }

    public static func measure(_ database: Database, keyPrefix: String, logger: Logger) async throws -> RunFigures {
        let query: PostgresQuery = """
            SELECT count(*)::int8,
                   COALESCE(EXTRACT(EPOCH FROM max(finished_at) - min(claimed_at)), 0)::float8,
                   COALESCE(percentile_cont(0.50) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - created_at)), 0)::float8,
                   COALESCE(percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - created_at)), 0)::float8,
                   COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - created_at)), 0)::float8
            FROM payments_by_key(\(keyPrefix + "-%")) WHERE finished_at IS NOT NULL
            """
        for try await (n, seconds, p50, p95, p99) in try await database.write.query(query, logger: logger).decode((Int64, Double, Double, Double, Double).self) {
            return RunFigures(jobs: Int(n), seconds: seconds, p50: p50, p95: p95, p99: p99)
        }
        return RunFigures()
    }
}

/// A sample of job ids of a run, for status reads while it is processed.
public func sampleJobIDs(_ database: Database, keyPrefix: String, limit: Int, logger: Logger) async throws -> [Int64] {
    var ids: [Int64] = []
    let query: PostgresQuery = "SELECT payment_id FROM payment_keys WHERE idempotency_key LIKE \(keyPrefix + "-%") ORDER BY payment_id LIMIT \(Int64(limit))"
    for try await (id) in try await database.write.query(query, logger: logger).decode(Int64.self) { ids.append(id) }
    return ids
}
