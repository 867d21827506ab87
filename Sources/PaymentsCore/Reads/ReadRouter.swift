import Foundation
import Logging
import PostgresNIO

/// The one path every status read takes (`GET /v1/payments/{id}`, `/v1/stats`,
/// `payments status`): pgbouncer-read first, bounded by a timeout; the primary through
/// pgbouncer-write when the replica's answer cannot be used (not fresh enough, or the
/// caller says so) or, if `fallback` is on, when the read path fails. Every answer is
/// counted per node.
public struct ReadRouter: Sendable {
    public let database: Database
    /// Read from the primary when the read path fails (else the read fails with `unreachable`).
    public let fallback: Bool
    /// A read path that does not answer within this counts as down.
    public let timeout: Duration
    public let counts: ReadCounters
    let logger: Logger
    private let throttle = LogThrottle()

    public init(database: Database, fallback: Bool = true, timeout: Duration = .seconds(3),
                counts: ReadCounters = ReadCounters(), logger: Logger) {
        self.database = database
        self.fallback = fallback
        self.timeout = timeout
        self.counts = counts
        self.logger = logger
    }

    /// Runs a routed statement (one that starts with `payment_read_node()`'s columns) and
    /// decodes the columns after the node's from every row.
    /// - Parameter unusable: why a replica's answer must be read again from the primary
    ///   (for example "not found on payments-replica-1"), or nil to use it.
    /// - Parameter fallback: overrides the router's fallback for this read.
    func read<Value: Sendable>(
        _ statement: PostgresQuery,
        timeout: Duration? = nil,
        fallback: Bool? = nil,
        decode: @escaping @Sendable ([PostgresRandomAccessRow]) throws -> Value,
        unusable: @escaping @Sendable (Value, ReadSource) -> String? = { _, _ in nil }
    ) async throws -> Routed<Value> {
        let timeout = timeout ?? self.timeout
        var reason: String
        do {
            let (answer, fresh) = try await withTimeout(timeout) {
                try await self.run(statement, on: self.database.read, decode: decode)
            }
            counts.record(answer.source)
            if !fresh {
                reason = "\(answer.source.node) has not replayed the token yet"
            } else if let why = unusable(answer.value, answer.source) {
                reason = why
            } else {
                return answer
            }
        } catch where isTransientDatabaseError(error) {
            guard fallback ?? self.fallback else {
                throw PaymentsError.unreachable(role: "pgbouncer-read", endpoint: database.readURL.endpoint, reason: describe(error))
            }
            logThrottled("read path failed; reading from the primary", error: error)
            reason = "read path unavailable: \(describe(error))"
        }
        var (answer, _) = try await withTimeout(timeout) {
            try await self.run(statement, on: self.database.write, decode: decode)
        }
        counts.record(answer.source)
        answer.source.viaWritePath = true
        answer.source.reason = reason
        return answer
    }

    func logThrottled(_ message: String, error: any Error) {
        throttle.log(logger, .warning, message, metadata: ["error": "\(describe(error))"])
    }

    /// Asks the read path which node answers, never falling back: a probe of the path itself.
    /// The clock of the node a read lands on (through the read path only), as an offset
    /// from this process's.
    public func readNodeClock() async throws -> ClockReading {
        var node = ""
        let reading = try await ClockSkew.measure("read node") {
            let routed = try await read(ReadStatements.nodeClock, fallback: false) { rows in
                try rows[0][ReadNode.columnCount].decode(Double.self)
            }
            node = routed.source.node
            return Date(timeIntervalSince1970: routed.value)
        }
        return ClockReading(name: node, offsetSeconds: reading.offsetSeconds, uncertaintySeconds: reading.uncertaintySeconds)
    }

    /// The primary's clock (through pgbouncer-write), as an offset from this process's.
    public func primaryClock() async throws -> ClockReading {
        var node = "primary"
        let reading = try await ClockSkew.measure("primary") {
            for try await row in try await database.write.query(ReadStatements.nodeClock, logger: logger) {
                let columns = row.makeRandomAccess()
                node = try columns[1].decode(String.self)
                return Date(timeIntervalSince1970: try columns[ReadNode.columnCount].decode(Double.self))
            }
            throw PaymentsError.database("the primary's clock read returned no row")
        }
        return ClockReading(name: "\(node) (primary)", offsetSeconds: reading.offsetSeconds, uncertaintySeconds: reading.uncertaintySeconds)
    }

    public func identifyReadNode() async throws -> ReadSource {
        try await read(ReadStatements.nodeIdentity, fallback: false, decode: { _ in () }).source
    }

    func run<Value: Sendable>(
        _ statement: PostgresQuery, on client: PostgresClient,
        decode: @Sendable ([PostgresRandomAccessRow]) throws -> Value
    ) async throws -> (Routed<Value>, fresh: Bool) {
        var rows: [PostgresRandomAccessRow] = []
        for try await row in try await client.query(statement, logger: logger) { rows.append(row.makeRandomAccess()) }
        guard let first = rows.first else { throw PaymentsError.database("a routed read returned no row") }
        let replica = try first[0].decode(Bool.self)
        let name = try first[1].decode(String.self)
        let source = ReadSource(kind: replica ? .replica : .primary,
                                node: name.isEmpty ? (replica ? "replica" : "payments-primary") : name,
                                lagSeconds: try first[2].decode(Double.self))
        let fresh = try first[3].decode(Bool.self)
        return (Routed(value: try decode(rows), source: source), fresh)
    }
}
