import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Bulk inserts of payment jobs through pgbouncer-write: multi-row `unnest` batches,
/// `ON CONFLICT (idempotency_key) DO NOTHING`, several batches in flight at once.
public struct Enqueuer: Sendable {
    public struct Progress: Sendable {
        public var done: Int
        public var total: Int
        public var inserted: Int
        public var elapsed: Duration
    }

    public struct Summary: Sendable, Equatable {
        public var total: Int
        public var inserted: Int
        public var duplicates: Int
        public var seconds: Double
        public var jobsPerSecond: Double { seconds > 0 ? Double(total) / seconds : 0 }
    }

    public let client: PostgresClient
    public let logger: Logger
    public var batchSize: Int
    public var connections: Int

    public init(client: PostgresClient, logger: Logger, batchSize: Int = 5_000, connections: Int = 4) {
        self.client = client
        self.logger = logger
        self.batchSize = batchSize
        self.connections = connections
    }

    /// Generates `count` realistic jobs and inserts them, `connections` batches at a time.
    public func enqueueGenerated(count: Int, keyPrefix: String, seed: UInt64,
                                 progress: @escaping @Sendable (Progress) -> Void) async throws -> Summary {
        let clock = ContinuousClock()
        let start = clock.now
        let batches = stride(from: 0, to: count, by: batchSize).map { ($0, min($0 + batchSize, count)) }
        let counters = Counters()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, min(connections, batches.count)) {
                group.addTask {
                    // Each task generates its own batches: generation runs in parallel too.
                    while let index = counters.takeBatch(below: batches.count) {
                        let (lower, upper) = batches[index]
                        var generator = JobGenerator(keyPrefix: keyPrefix, seed: seed &+ UInt64(index) &* 0x9E37_79B9)
                        let jobs = (lower..<upper).map { generator.make(index: $0) }
                        let new = try await Self.insertBatch(jobs, on: client, logger: logger)
                        let (doneTotal, newTotal) = counters.record(done: jobs.count, inserted: new)
                        progress(Progress(done: doneTotal, total: count, inserted: newTotal, elapsed: clock.now - start))
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = (clock.now - start).seconds
        let new = counters.inserted
        return Summary(total: count, inserted: new, duplicates: count - new, seconds: seconds)
    }

    /// Inserts the payments of one file atomically: if any key already exists with a
    /// different payment, nothing is inserted and the conflicting lines are reported.
    public func enqueueFile(_ payments: [NewPayment], progress: @escaping @Sendable (Progress) -> Void) async throws -> Summary {
        let clock = ContinuousClock()
        let start = clock.now
        let batchSize = self.batchSize
        let logger = self.logger
        let new = try await client.withTransaction(logger: logger) { connection -> Int in
            var new = 0
            var conflicts: [LineError] = []
            for lower in stride(from: 0, to: payments.count, by: batchSize) {
                let batch = Array(payments[lower..<min(lower + batchSize, payments.count)])
                let result = try await Self.insertBatchCheckingConflicts(batch, on: connection, logger: logger)
                new += result.inserted
                conflicts += result.conflicts
                progress(Progress(done: lower + batch.count, total: payments.count, inserted: new, elapsed: clock.now - start))
            }
            // Throwing rolls the whole file back.
            if !conflicts.isEmpty { throw PaymentsError.invalidInput(lines: conflicts, total: payments.count) }
            return new
        }
        let seconds = (clock.now - start).seconds
        return Summary(total: payments.count, inserted: new, duplicates: payments.count - new, seconds: seconds)
    }

    final class Counters: Sendable {
        private let state = Mutex<(next: Int, done: Int, inserted: Int)>((0, 0, 0))
        func takeBatch(below limit: Int) -> Int? {
            state.withLock { s in
                guard s.next < limit else { return nil }
                defer { s.next += 1 }
                return s.next
            }
        }
        func record(done: Int, inserted: Int) -> (done: Int, inserted: Int) {
            state.withLock { s in
                s.done += done
                s.inserted += inserted
                return (s.done, s.inserted)
            }
        }
        var inserted: Int { state.withLock { $0.inserted } }
    }

    /// One statement per batch; returns how many rows were new.
    static func insertBatch(_ jobs: [NewPayment], on client: PostgresClient, logger: Logger) async throws -> Int {
        let query = IntakeSQL.insertCountingNew(PaymentRows(jobs))
        for try await (count) in try await client.query(query, logger: logger).decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Like `insertBatch`, and also reports keys that already exist for a different payment.
    static func insertBatchCheckingConflicts(_ jobs: [NewPayment], on connection: PostgresConnection,
                                             logger: Logger) async throws -> (inserted: Int, conflicts: [LineError]) {
        let query = IntakeSQL.insertCheckingConflicts(PaymentRows(jobs))
        let lineOf = Dictionary(jobs.map { ($0.idempotencyKey, $0.line) }, uniquingKeysWith: { a, _ in a })
        for try await (count, conflicting) in try await connection.query(query, logger: logger).decode((Int64, [String]).self) {
            let conflicts = conflicting.map {
                LineError(line: lineOf[$0] ?? 0, reason: "idempotency_key '\($0)' already exists for a different payment")
            }.sorted { $0.line < $1.line }
            return (Int(count), conflicts)
        }
        return (0, [])
    }
}
