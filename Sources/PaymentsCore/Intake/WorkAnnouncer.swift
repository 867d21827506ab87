import Logging
import PostgresNIO
import Synchronization

/// Tells listening claimers (`QueueListener`) that payments were queued: a `pg_notify` in
/// the intake's own transaction, so it is delivered at the commit and a claim that hears
/// it sees the rows. At most once per `interval` in a process, and one announcing
/// transaction at a time.
///
/// The limits are for PostgreSQL's sake: a transaction that has notified takes the notify
/// queue's lock (one for the whole cluster) at its commit and keeps it until the commit is
/// flushed, and in HA mode until the synchronous standby has it (PostgreSQL 15,
/// PreCommit_Notify), so notifying commits go one at a time. Every API post notifying would
/// put each behind the others', each holding a pooled server connection while it waits. A
/// payment queued while another's announcement is due or in flight is found by the
/// claimer's poll, at its short pace then.
public final class WorkAnnouncer: Sendable {
    /// The channel the intakes notify and the claimers' listeners listen on.
    public static let channel = "payment_queue"
    static let statement: PostgresQuery = "SELECT pg_notify('payment_queue', '')"

    public let interval: Duration
    private let state = Mutex<(last: ContinuousClock.Instant?, inFlight: Bool)>((nil, false))
    let statement: PostgresQuery

    public convenience init(interval: Duration = .milliseconds(10)) {
        self.init(interval: interval, statement: Self.statement)
    }

    /// `statement` in place of the NOTIFY: tests make it fail.
    init(interval: Duration, statement: PostgresQuery) {
        self.interval = interval
        self.statement = statement
    }

    /// The right to announce in the transaction about to run, if no announcement is in
    /// flight and none was made within `interval` of `now`; released when that
    /// transaction has ended, committed or not.
    public func take(now: ContinuousClock.Instant = .now) -> Ticket? {
        state.withLock { s in
            if s.inFlight { return nil }
            if let previous = s.last, now - previous < interval { return nil }
            s = (now, true)
            return Ticket(announcer: self)
        }
    }

    fileprivate func release() { state.withLock { $0.inFlight = false } }

    /// `body` in a transaction of `client` that ends with the announcement when `announcer`
    /// allows one and `queued` says `body`'s result queued payments; the right to announce
    /// is released once the transaction has ended, committed or not. Every intake's
    /// transaction goes through here.
    static func transaction<T>(on client: PostgresClient, announcer: WorkAnnouncer?, logger: Logger,
                               queued: (T) -> Bool, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let ticket = announcer?.take()
        defer { ticket?.release() }
        return try await client.withTransaction(logger: logger) { connection in
            let result = try await body(connection)
            if queued(result) { try await ticket?.announce(on: connection, logger: logger) }
            return result
        }
    }

    public struct Ticket: Sendable {
        fileprivate let announcer: WorkAnnouncer

        /// Inside the intake's transaction, after its insert: rolled back with it. Its
        /// answer is read to the end: PostgresNIO reports an error raised while a statement
        /// runs in its rows, and PostgreSQL answers the COMMIT that follows an error with
        /// ROLLBACK and no error, so an unread failure would report a rolled-back intake as
        /// written (test `aFailedAnnouncementFailsItsIntakeAndWritesNothing`).
        func announce(on connection: PostgresConnection, logger: Logger) async throws {
            _ = try await connection.query(announcer.statement, logger: logger).collect()
        }

        /// Once the transaction has ended.
        public func release() { announcer.release() }
    }
}
