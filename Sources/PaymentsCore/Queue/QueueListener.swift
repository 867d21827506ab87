import Logging
import PostgresNIO
import ServiceLifecycle

/// Listens for the intakes' announcements of new payments (`WorkAnnouncer`) and rings the
/// claimer's doorbell, so a payment queued while the claimer waits between polls is
/// claimed at once instead of at the next poll.
///
/// On a connection of its own, straight to the primary (DESIGN 4.7): LISTEN is session
/// state, which a transaction pooler cannot keep, and a standby cannot listen (NOTIFY is
/// not replicated). In HA mode the URL is HAProxy's write port, which follows the leader.
///
/// Polling goes on whatever happens here: a listener that is down only makes the wait for
/// a claim the poll's again. A connection that breaks, or stops answering the ping (a
/// primary gone without a reset: a failover), is replaced, and the claimer is woken once on
/// each new connection for what was announced while none listened.
public struct QueueListener: Service {
    let url: DatabaseURL
    let doorbell: Doorbell
    let metrics: WorkerMetrics
    let logger: Logger
    /// How often the connection is checked (`check`: it must answer within as long).
    var pingInterval: Duration = .seconds(5)
    let throttle = LogThrottle(interval: .seconds(30))
    public static let applicationName = "payments-listener"

    public init(url: DatabaseURL, doorbell: Doorbell, metrics: WorkerMetrics, logger: Logger) {
        self.url = url
        self.doorbell = doorbell
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.listenWhileRunning() }
    }

    func listenWhileRunning() async {
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            let began = ContinuousClock.now
            do {
                try await listenOnce()
            } catch {
                if Task.isCancelled { break }
                // A connection that listened a while was a good one: try again soon. One that
                // fails at once (wrong credentials, a standby, a pooler) backs off to 5 s.
                if ContinuousClock.now - began >= pingInterval * 2 { backoff = .milliseconds(100) }
                throttle.log(logger, .warning, "listening for new payments failed; the claimer polls meanwhile",
                             metadata: ["error": "\(describe(error))", "url": "\(url)", "retry_in_ms": "\(Int(backoff.seconds * 1000))"])
            }
            metrics.setListening(false)
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        metrics.setListening(false)
    }

    /// One connection's life: LISTEN, then ring at every notification until the connection
    /// fails or the task is cancelled. The pings start with the LISTEN, not after it: they
    /// queue behind it on the connection, so a LISTEN that never gets its answer (a primary
    /// gone silent after the login) ends in a ping's timeout too.
    func listenOnce() async throws {
        var configuration = try url.connectionConfiguration(connectTimeout: .seconds(5))
        // Named, so an operator (or a test) can tell it in pg_stat_activity.
        configuration.options.additionalStartupParameters = [("application_name", Self.applicationName)]
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        do {
            // A standby would refuse the LISTEN in its own words; this says what to give.
            try await withTimeout(pingInterval) { [logger] in
                for try await standby in try await connection.query("SELECT pg_is_in_recovery()", logger: logger).decode(Bool.self) where standby {
                    throw QueueListenerError.standby
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { [doorbell, metrics, logger, url] in
                    try await connection.listen(on: WorkAnnouncer.channel) { notifications in
                        metrics.setListening(true)
                        logger.info("listening for new payments", metadata: ["url": "\(url)", "channel": "\(WorkAnnouncer.channel)"])
                        // Whatever was announced while no connection listened.
                        doorbell.ring()
                        for try await _ in notifications {
                            metrics.recordWakeup()
                            doorbell.ring()
                        }
                    }
                    throw QueueListenerError.connectionEnded
                }
                group.addTask { [pingInterval, logger] in
                    while true {
                        // After the LISTEN is sent (at once, by the task above), so the first
                        // check finds it listening or waits behind it.
                        try await Task.sleep(for: pingInterval)
                        try await withTimeout(pingInterval) { try await Self.check(connection, logger: logger) }
                    }
                }
                // Either ends only by failing (or by cancellation): the other goes with it.
                defer { group.cancelAll() }
                try await group.next()
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    /// The connection answers, is a primary's, and listens: a session behind a
    /// transaction pooler would have listened on a server connection it then gave back,
    /// and hear nothing while every ping succeeds.
    static func check(_ connection: PostgresConnection, logger: Logger) async throws {
        let query: PostgresQuery = """
            SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_listening_channels() c WHERE c = \(WorkAnnouncer.channel))
            """
        for try await (standby, listening) in try await connection.query(query, logger: logger).decode((Bool, Bool).self) {
            if standby { throw QueueListenerError.standby }
            if !listening { throw QueueListenerError.notASession }
        }
    }
}

enum QueueListenerError: Error, CustomStringConvertible {
    case connectionEnded, standby, notASession

    var description: String {
        switch self {
        case .connectionEnded: "the listening connection ended"
        case .standby: "the primary DSN reaches a standby, which cannot listen: give the primary itself (HA: HAProxy's write port)"
        case .notASession: "the primary DSN keeps no session (a transaction pooler?): LISTEN needs a direct connection to the primary"
        }
    }
}
