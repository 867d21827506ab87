import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A job as the API shows it.
public struct JobView: Sendable, Equatable, Codable {
    public struct Posting: Sendable, Equatable, Codable {
        public var side: String
        public var account: String
        public var amountMinor: Int64
        public var currency: String
        public var postedAt: String
        enum CodingKeys: String, CodingKey {
            case side, account, currency
            case amountMinor = "amount_minor", postedAt = "posted_at"
        }
    }
    public var id: Int64
    public var idempotencyKey: String
    public var amountMinor: Int64
    public var currency: String
    public var debtor: String
    public var creditor: String
    public var state: String
    public var attempt: Int32
    public var maxAttempts: Int32
    public var priority: Int16
    public var lastError: String?
    public var chargeID: String?
    public var createdAt: String
    public var updatedAt: String
    public var finishedAt: String?
    public var postings: [Posting]?

    enum CodingKeys: String, CodingKey {
        case id, currency, debtor, creditor, state, attempt, priority, postings
        case idempotencyKey = "idempotency_key", amountMinor = "amount_minor", maxAttempts = "max_attempts"
        case lastError = "last_error", chargeID = "charge_id", createdAt = "created_at", updatedAt = "updated_at", finishedAt = "finished_at"
    }
}

/// Where a read was answered, and how far behind that node was.
public struct ReadSource: Sendable, Equatable {
    public enum Kind: String, Sendable { case replica, primary }
    public var kind: Kind
    /// cluster_name of the node: payments-replica-1, payments-replica-2 or payments-primary.
    public var node: String
    public var lagSeconds: Double?
    /// The read came from the primary through pgbouncer-write because the read path failed.
    public var viaWritePath: Bool
    /// Why a replica's answer was not used, if it was not.
    public var reason: String?
}

public enum CreateResult: Sendable, Equatable {
    case created(JobView, freshnessToken: String)
    case existing(JobView, freshnessToken: String)
    case keyReusedWithDifferentBody(existingID: Int64)
}

/// The API's domain logic: create payments through pgbouncer-write, read them through
/// pgbouncer-read with read-your-writes, and summarise the queue.
public struct PaymentService: Sendable {
    public let database: Database
    public let logger: Logger
    /// Fall back to the primary (through pgbouncer-write) when the read path fails.
    public let readFallback: Bool
    public let readCounts: ReadCounters
    public var readTimeout: Duration = .seconds(3)

    public init(database: Database, readFallback: Bool = true, readCounts: ReadCounters = ReadCounters(), logger: Logger) {
        self.database = database
        self.readFallback = readFallback
        self.readCounts = readCounts
        self.logger = logger
    }

    static let jobColumns = """
        j.id, j.idempotency_key, j.amount_minor, j.currency::text, j.debtor, j.creditor, j.state, j.attempt, j.max_attempts,
        j.priority, j.last_error, j.charge_id,
        to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        to_char(j.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        """
    /// The job's ledger postings as one JSON array (debit first).
    static let postingsColumn = """
        (SELECT json_agg(json_build_object('side', l.side, 'account', l.account, 'amount_minor', l.amount_minor,
             'currency', l.currency, 'posted_at', to_char(l.posted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) ORDER BY l.side DESC)::text
         FROM ledger_entries l WHERE l.job_id = j.id)
        """
    typealias JobRow = (Int64, String, Int64, String, String, String, String, Int32, Int32, Int16, String?, String?, String, String, String?)

    static func view(_ r: JobRow) -> JobView {
        JobView(id: r.0, idempotencyKey: r.1, amountMinor: r.2, currency: r.3, debtor: r.4, creditor: r.5, state: r.6,
                attempt: r.7, maxAttempts: r.8, priority: r.9, lastError: r.10, chargeID: r.11,
                createdAt: r.12, updatedAt: r.13, finishedAt: r.14, postings: nil)
    }

    // MARK: create

    public func create(_ request: PaymentRequest, idempotencyKey: String) async throws -> CreateResult {
        let client = database.write
        var created: JobView?
        let insert: PostgresQuery = """
            INSERT INTO payment_jobs AS j (idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor, priority, max_attempts)
            VALUES (\(idempotencyKey), \(request.fingerprint), \(request.amountMinor), \(request.currency), \(request.debtor),
                    \(request.creditor), \(request.priority), \(request.maxAttempts))
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING \(unescaped: Self.jobColumns)
            """
        for try await row in try await client.query(insert, logger: logger).decode(JobRow.self) {
            created = Self.view(row)
        }
        // The token is read after the commit: the commit record's WAL position is then
        // at or before it, so a replica that has replayed past it has the row.
        let token = try await currentLSN()
        if let created { return .created(created, freshnessToken: token) }

        let lookup: PostgresQuery = "SELECT j.request_fingerprint, \(unescaped: Self.jobColumns) FROM payment_jobs j WHERE j.idempotency_key = \(idempotencyKey)"
        for try await row in try await client.query(lookup, logger: logger).decode((String, Int64, String, Int64, String, String, String, String, Int32, Int32, Int16, String?, String?, String, String, String?).self) {
            let job = Self.view((row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11, row.12, row.13, row.14, row.15))
            guard row.0 == request.fingerprint else { return .keyReusedWithDifferentBody(existingID: job.id) }
            return .existing(job, freshnessToken: token)
        }
        throw PaymentsError.database("payment with idempotency key vanished between insert and lookup")
    }

    func currentLSN() async throws -> String {
        for try await (lsn) in try await database.write.query("SELECT pg_current_wal_lsn()::text", logger: logger).decode(String.self) {
            return lsn
        }
        throw PaymentsError.database("pg_current_wal_lsn() returned nothing")
    }

    // MARK: read

    public struct ReadResult: Sendable {
        public var job: JobView?
        public var source: ReadSource
    }

    /// Reads a job from a replica. The replica's identity, lag and freshness check run in
    /// the same statement as the read, so they describe the node that answered. Falls
    /// back to the primary when the replica lacks the job, has not replayed past the
    /// client's token, or the read path is down (if `readFallback`).
    public func job(id: Int64, freshnessToken: String?) async throws -> ReadResult {
        var reason: String?
        do {
            // Bounded: a replica path that hangs must not hold the client; it counts as down.
            let (job, source, fresh) = try await withTimeout(readTimeout) {
                try await self.readFromReplicaPath(id: id, token: freshnessToken)
            }
            readCounts.record(source.node)
            if fresh, let job { return ReadResult(job: job, source: source) }
            reason = fresh ? "not found on \(source.node)" : "\(source.node) has not replayed the token yet"
        } catch where isTransientDatabaseError(error) {
            guard readFallback else { throw PaymentsError.unreachable(role: "pgbouncer-read", endpoint: database.readURL.endpoint, reason: describe(error)) }
            logger.warning("read path failed; reading from the primary", metadata: ["job_id": "\(id)", "error": "\(describe(error))"])
            reason = "read path unavailable: \(describe(error))"
        }
        let job = try await readJob(id: id, on: database.write)
        readCounts.record("payments-primary")
        return ReadResult(job: job, source: ReadSource(kind: .primary, node: "payments-primary", lagSeconds: 0, viaWritePath: true, reason: reason))
    }

    func readFromReplicaPath(id: Int64, token: String?) async throws -> (JobView?, ReadSource, fresh: Bool) {
        let query: PostgresQuery = """
            WITH node AS (
                SELECT pg_is_in_recovery() AS replica,
                       current_setting('cluster_name') AS name,
                       CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
                            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0) END AS lag,
                       CASE WHEN \(token)::text IS NULL THEN true
                            WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() >= \(token)::pg_lsn
                            ELSE true END AS fresh)
            SELECT n.replica, n.name, n.lag, n.fresh, \(unescaped: Self.jobColumns), \(unescaped: Self.postingsColumn)
            FROM node n LEFT JOIN payment_jobs j ON j.id = \(id)
            """
        let rows = try await database.read.query(query, logger: logger)
        for try await row in rows.decode((Bool, String, Double, Bool, Int64?, String?, Int64?, String?, String?, String?, String?, Int32?, Int32?, Int16?, String?, String?, String?, String?, String?, String?).self) {
            let source = ReadSource(kind: row.0 ? .replica : .primary, node: row.1.isEmpty ? (row.0 ? "replica" : "payments-primary") : row.1,
                                    lagSeconds: row.2, viaWritePath: false, reason: nil)
            guard let jobID = row.4 else { return (nil, source, row.3) }
            var job = JobView(id: jobID, idempotencyKey: row.5!, amountMinor: row.6!, currency: row.7!, debtor: row.8!, creditor: row.9!,
                              state: row.10!, attempt: row.11!, maxAttempts: row.12!, priority: row.13!, lastError: row.14, chargeID: row.15,
                              createdAt: row.16!, updatedAt: row.17!, finishedAt: row.18, postings: [])
            job.postings = try Self.postings(row.19)
            return (job, source, row.3)
        }
        throw PaymentsError.database("replica read returned no row")
    }

    func readJob(id: Int64, on client: PostgresClient) async throws -> JobView? {
        let query: PostgresQuery = """
            SELECT \(unescaped: Self.jobColumns), \(unescaped: Self.postingsColumn)
            FROM payment_jobs j WHERE j.id = \(id)
            """
        for try await row in try await client.query(query, logger: logger).decode((Int64, String, Int64, String, String, String, String, Int32, Int32, Int16, String?, String?, String, String, String?, String?).self) {
            var job = Self.view((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11, row.12, row.13, row.14))
            job.postings = try Self.postings(row.15)
            return job
        }
        return nil
    }

    static func postings(_ json: String?) throws -> [JobView.Posting] {
        guard let json else { return [] }
        return try JSONDecoder().decode([JobView.Posting].self, from: Data(json.utf8))
    }
}

/// Reads answered per node, for /v1/stats and the demo's proof that both replicas serve.
public final class ReadCounters: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    public init() {}
    public func record(_ node: String) { counts.withLock { $0[node, default: 0] += 1 } }
    public var snapshot: [String: Int] { counts.withLock { $0 } }
}
