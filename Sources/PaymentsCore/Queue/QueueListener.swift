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
    /// How often an idle connection is checked (a `SELECT 1` that must answer in as long).
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
            do {
                try await listenOnce { backoff = .milliseconds(100) }
            } catch {
                if Task.isCancelled { break }
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
    /// fails or the task is cancelled.
    private func listenOnce(connected: () -> Void) async throws {
        var configuration = try url.connectionConfiguration(connectTimeout: .seconds(5))
        // Named, so an operator (or a test) can tell it in pg_stat_activity.
        configuration.options.additionalStartupParameters = [("application_name", Self.applicationName)]
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
        do {
            try await connection.listen(on: WorkAnnouncer.channel) { notifications in
                connected()
                metrics.setListening(true)
                logger.info("listening for new payments", metadata: ["url": "\(url)", "channel": "\(WorkAnnouncer.channel)"])
                // Whatever was announced while no connection listened.
                doorbell.ring()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await _ in notifications {
                            metrics.recordWakeup()
                            doorbell.ring()
                        }
                        throw PaymentsError.database("the listening connection ended")
                    }
                    group.addTask { [pingInterval] in
                        while true {
                            try await Task.sleep(for: pingInterval)
                            try await withTimeout(pingInterval) {
                                for try await _ in try await connection.query("SELECT 1", logger: logger) {}
                            }
                        }
                    }
                    // Either ends only by failing (or by cancellation): the other goes with it.
                    defer { group.cancelAll() }
                    try await group.next()
                }
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }
}
