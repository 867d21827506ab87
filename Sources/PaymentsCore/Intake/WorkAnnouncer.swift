import Logging
import PostgresNIO
import Synchronization

/// Tells listening claimers (`QueueListener`) that payments were queued: a `pg_notify` in
/// the intake's own transaction, so it is delivered at the commit and a claim that hears
/// it sees the rows. At most once per `interval` in a process.
///
/// The limit is for PostgreSQL's sake: a transaction that has notified takes the notify
/// queue's lock at its commit and keeps it until the commit is flushed (PostgreSQL 15,
/// PreCommit_Notify), so notifying commits go one at a time, fsync after fsync. Every API
/// post notifying would put each behind the others. A payment queued within the interval
/// after an announced one is found by the claimer's poll, at its short pace then.
public final class WorkAnnouncer: Sendable {
    /// The channel the intakes notify and the claimers' listeners listen on.
    public static let channel = "payment_queue"
    static let statement: PostgresQuery = "SELECT pg_notify('payment_queue', '')"

    public let interval: Duration
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    public init(interval: Duration = .milliseconds(10)) {
        self.interval = interval
    }

    /// Whether an intake committing at `now` announces; if so, none does for `interval`.
    public func shouldAnnounce(now: ContinuousClock.Instant = .now) -> Bool {
        last.withLock { last in
            if let previous = last, now - previous < interval, now >= previous { return false }
            last = now
            return true
        }
    }

    /// Inside the intake's transaction, after its insert: rolled back with it.
    func announce(on connection: PostgresConnection, logger: Logger) async throws {
        guard shouldAnnounce() else { return }
        try await connection.query(Self.statement, logger: logger)
    }
}
