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
        /// With a rate: the most any batch started behind its time (zero when the
        /// database kept up with the rate asked for).
        public var behindSchedule: Duration = .zero
        public var jobsPerSecond: Double { seconds > 0 ? Double(total) / seconds : 0 }

        public init(total: Int, inserted: Int, duplicates: Int, seconds: Double, behindSchedule: Duration = .zero) {
            self.total = total
            self.inserted = inserted
            self.duplicates = duplicates
            self.seconds = seconds
            self.behindSchedule = behindSchedule
        }
    }

    public let client: PostgresClient
    public let logger: Logger
    public var batchSize: Int
    public var connections: Int
    /// How long one batch (or a whole file) may take, waiting for a pooled connection
    /// included: the pool waits for a connection however long logins keep failing, so
    /// without a bound a command cut off from the primary never ends.
    public var timeout: Duration
    /// The retry budget of a payment that names none (seconds from its creation).
    public var giveUpAfterSeconds: Int32 = PaymentRequest.defaultGiveUpAfterSeconds
    /// Where the writes go, for the error a timeout turns into.
    public var endpoint: String
    /// Announces committed batches to listening claimers (nil: they find them by polling).
    public var announcer: WorkAnnouncer? = WorkAnnouncer()

    /// Rows per INSERT when the caller does not say.
    public static let defaultBatchSize = 5_000

    public init(client: PostgresClient, logger: Logger, batchSize: Int = Enqueuer.defaultBatchSize, connections: Int = 4,
                timeout: Duration = .seconds(30), endpoint: String = "pgbouncer-write") {
        self.client = client
        self.logger = logger
        self.batchSize = batchSize
        self.connections = connections
        self.timeout = timeout
        self.endpoint = endpoint
    }

    /// `operation` within `timeout`; past it, the error says which pooler did not answer.
    public func withinDeadline<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withDeadline(timeout, role: "pgbouncer-write", endpoint: endpoint, hint: "is the primary up?", operation)
    }

    /// `operation` again after each transient error (a failover's reset connections, a
    /// demoted node's 25006, a pooler that cannot log in yet), within `timeout` in all.
    /// Safe because every insert is keyed: a batch whose COMMIT committed but whose answer
    /// was lost inserts nothing the second time (its payments then count as duplicates,
    /// never twice). The tries run one after another, never side by side. Past the
    /// timeout, the error names the last failure retried, not just the silence.
    public func retryingWithinDeadline<T: Sendable>(what: String, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let logger = logger
        let last = LastError()
        do {
            return try await withinDeadline {
                try await retrying(first: .milliseconds(50), cap: .seconds(1),
                                   while: { error, _ in isTransientDatabaseError(error) && !Task.isCancelled },
                                   onRetry: { error, delay in
                                       last.set(describe(error))
                                       logger.warning("\(what) failed; retrying", metadata: ["error": "\(describe(error))", "retry_in": "\(delay)"])
                                   }, operation)
            }
        } catch PaymentsError.unreachable(let role, let endpoint, let reason) {
            guard let lastError = last.value else { throw PaymentsError.unreachable(role: role, endpoint: endpoint, reason: reason) }
            throw PaymentsError.unreachable(role: role, endpoint: endpoint, reason: "\(what) still failing after \(timeout): \(lastError)")
        }
    }

    final class LastError: Sendable {
        private let state = Mutex<String?>(nil)
        func set(_ text: String) { state.withLock { $0 = text } }
        var value: String? { state.withLock { $0 } }
    }

    /// Generates `count` realistic jobs and inserts them, `connections` batches at a time.
    /// - Parameter rate: jobs per second to hold to, as a load generator: the batch
    ///   holding job n starts no sooner than n / rate seconds after the first, so jobs
    ///   arrive at a steady pace rather than as fast as the connections go (one process
    ///   instead of many started per second, whose start-up would load the machine it
    ///   measures). nil: as fast as possible.
    public func enqueueGenerated(count: Int, keyPrefix: String, seed: UInt64, rate: Double? = nil,
                                 progress: @escaping @Sendable (Progress) -> Void) async throws -> Summary {
        let clock = ContinuousClock()
        let start = clock.now
        let batches = stride(from: 0, to: count, by: batchSize).map { ($0, min($0 + batchSize, count)) }
        let counters = Counters()
        let budget = giveUpAfterSeconds
        let announcer = announcer
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, min(connections, batches.count)) {
                group.addTask {
                    // Each task generates its own batches: generation runs in parallel too.
                    // A cancelled run (another batch failed) takes no new batch: one begun
                    // now could commit without being counted.
                    while !Task.isCancelled, let index = counters.takeBatch(below: batches.count) {
                        let (lower, upper) = batches[index]
                        if let rate {
                            let due = start + .seconds(Double(lower) / rate)
                            if due > clock.now { try await Task.sleep(until: due, clock: clock) }
                            counters.behind(clock.now - due)
                        }
                        var generator = JobGenerator(keyPrefix: keyPrefix, seed: seed &+ UInt64(index) &* 0x9E37_79B9)
                        let jobs = (lower..<upper).map { generator.make(index: $0) }
                        let new = try await retryingWithinDeadline(what: "a batch of \(jobs.count) payments") {
                            try await Self.insertBatch(jobs, budgetSeconds: budget, announcer: announcer, on: client, logger: logger)
                        }
                        let (doneTotal, newTotal) = counters.record(done: jobs.count, inserted: new)
                        progress(Progress(done: doneTotal, total: count, inserted: newTotal, elapsed: clock.now - start))
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = (clock.now - start).seconds
        let new = counters.inserted
        return Summary(total: count, inserted: new, duplicates: count - new, seconds: seconds,
                       behindSchedule: counters.mostBehind)
    }

    /// Inserts the payments of one file atomically: if any key belongs to a different
    /// payment (queued, finished or archived, including one another writer commits meanwhile),
    /// nothing is inserted and the conflicting lines are reported.
    public func enqueueFile(_ payments: [NewPayment], progress: @escaping @Sendable (Progress) -> Void) async throws -> Summary {
        let clock = ContinuousClock()
        let start = clock.now
        let batchSize = self.batchSize
        let logger = self.logger
        let client = self.client
        let budget = giveUpAfterSeconds
        let announcer = announcer
        let new = try await retryingWithinDeadline(what: "the file's transaction") {
            try await WorkAnnouncer.transaction(on: client, announcer: announcer, logger: logger, queued: { $0 > 0 }) { connection -> Int in
                var new = 0
                var conflicts: [LineError] = []
                let batches = payments.chunks(of: batchSize)
                var done = 0
                for batch in batches {
                    new += try await Self.insertBatch(batch, budgetSeconds: budget, on: connection, logger: logger)
                    done += batch.count
                    progress(Progress(done: done, total: payments.count, inserted: new, elapsed: clock.now - start))
                }
                // Checked after every insert has finished waiting on other writers, each in a
                // newer snapshot than the inserts: see IntakeSQL.conflicts.
                for batch in batches { conflicts += try await Self.conflicts(in: batch, on: connection, logger: logger) }
                // Throwing rolls the whole file back.
                if !conflicts.isEmpty { throw PaymentsError.invalidInput(lines: conflicts, total: payments.count) }
                return new
            }
        }
        let seconds = (clock.now - start).seconds
        return Summary(total: payments.count, inserted: new, duplicates: payments.count - new, seconds: seconds)
    }

    final class Counters: Sendable {
        private let state = Mutex<(next: Int, done: Int, inserted: Int, behind: Duration)>((0, 0, 0, .zero))
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
        func behind(_ lateness: Duration) {
            state.withLock { s in s.behind = max(s.behind, lateness) }
        }
        var inserted: Int { state.withLock { $0.inserted } }
        var mostBehind: Duration { state.withLock { $0.behind } }
    }

    /// One statement per batch, in a transaction of its own; returns how many rows were new.
    /// Not autocommit: PostgresNIO ends a query at CommandComplete, and an implicit
    /// transaction commits only at the Sync after it, so a batch could be reported inserted
    /// and then lost (a primary shut down in between did it). COMMIT's own answer comes
    /// after the commit.
    static func insertBatch(_ jobs: [NewPayment], budgetSeconds: Int32, announcer: WorkAnnouncer?, on client: PostgresClient,
                            logger: Logger) async throws -> Int {
        try await WorkAnnouncer.transaction(on: client, announcer: announcer, logger: logger, queued: { $0 > 0 }) { connection in
            try await insertBatch(jobs, budgetSeconds: budgetSeconds, on: connection, logger: logger)
        }
    }

    /// One statement per batch (inside the file's transaction); returns how many rows were new.
    static func insertBatch(_ jobs: [NewPayment], budgetSeconds: Int32, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        let query = IntakeSQL.insertCountingNew(PaymentRows(jobs, distinctKeys: true, budgetSeconds: budgetSeconds))
        for try await (count, unknown) in try await connection.query(query, logger: logger).decode((Int64, Int64).self) {
            // Checked before the batch (Catalog.currencies), so only a catalog changed
            // meanwhile gets here; throwing rolls the batch back.
            if unknown > 0 { throw PaymentsError.database("\(unknown) payments of a batch name a currency no longer in the currencies table; nothing of the batch was inserted") }
            return Int(count)
        }
        return 0
    }

    /// The lines of a batch whose keys belong to another payment (see IntakeSQL.conflicts).
    static func conflicts(in jobs: [NewPayment], on connection: PostgresConnection, logger: Logger) async throws -> [LineError] {
        let lineOf = Dictionary(jobs.map { ($0.idempotencyKey, $0.line) }, uniquingKeysWith: { a, _ in a })
        var errors: [LineError] = []
        for try await (key) in try await connection.query(IntakeSQL.conflicts(PaymentRows(jobs)), logger: logger).decode(String.self) {
            errors.append(LineError(line: lineOf[key] ?? 0, reason: "idempotency_key '\(key)' already exists for a different payment"))
        }
        return errors.sorted { $0.line < $1.line }
    }
}
