import Logging
import NIOCore
import PostgresNIO

/// The two connection pools of the contract: writes and claims through pgbouncer-write,
/// status reads through pgbouncer-read. Both use only unnamed statements (`query`),
/// never `PostgresPreparedStatement`, and no session state: see the README's "Transaction pooling" notes.
public struct Database: Sendable {
    public let write: PostgresClient
    public let read: PostgresClient
    public let writeURL: DatabaseURL
    public let readURL: DatabaseURL
    public let logger: Logger

    public init(writeURL: DatabaseURL, readURL: DatabaseURL, writePoolSize: Int = 8, readPoolSize: Int = 8, logger: Logger) {
        self.writeURL = writeURL
        self.readURL = readURL
        self.logger = logger
        var background = logger
        background[metadataKey: "pool"] = "write"
        self.write = PostgresClient(configuration: writeURL.clientConfiguration(maxConnections: writePoolSize), backgroundLogger: background)
        background[metadataKey: "pool"] = "read"
        self.read = PostgresClient(configuration: readURL.clientConfiguration(maxConnections: readPoolSize), backgroundLogger: background)
    }

    /// Runs both pools for the duration of `body` (for one-shot commands; `serve` runs
    /// them as services in its ServiceGroup instead).
    public func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self, returning: T.self) { group in
            group.addTask { await Self.runPool(self.write) }
            group.addTask { await Self.runPool(self.read) }
            defer { group.cancelAll() }
            // Let the run() tasks start before the first lease (PostgresNIO warns otherwise).
            try await Task.sleep(for: .milliseconds(20))
            return try await body()
        }
    }

    /// Runs `client` until the calling task is cancelled, then gives it at most
    /// `shutdownGrace` to close. PostgresNIO 1.33's pool can keep retrying a login that
    /// fails (pgbouncer's server_login_retry while the primary is away) after it was
    /// cancelled, and never return (vapor/postgres-nio#599); a process must still end.
    public static func runPool(_ client: PostgresClient, shutdownGrace: Duration = .seconds(2)) async {
        let finished = OneShot()
        let runner = Task {
            await client.run()
            finished.fire()
        }
        await withTaskCancellationHandler {
            await finished.wait()
        } onCancel: {
            runner.cancel()
            Task {
                try? await Task.sleep(for: shutdownGrace)
                finished.fire()
            }
        }
    }

    /// Fails fast, with the pooler's name and the reason, when a pooler does not answer.
    /// - Parameter patience: how long to keep asking while the pooler answers but its
    ///   server side is switching (see `isServerSideSwitching`). A pooler that refuses the
    ///   connection, or an error no wait can fix (authentication, an unknown database),
    ///   fails at once whatever the patience.
    public func checkReachable(write checkWrite: Bool = true, read checkRead: Bool = false, timeout: Duration = .seconds(5),
                               patience: Duration = .zero) async throws {
        if checkWrite { try await Self.ping(writeURL, role: "pgbouncer-write", timeout: timeout, patience: patience, logger: logger) }
        if checkRead { try await Self.ping(readURL, role: "pgbouncer-read", timeout: timeout, patience: patience, logger: logger) }
    }

    /// One dedicated connection and `SELECT 1`: unlike a pooled query, it surfaces the
    /// real cause (refused, authentication failed, unknown database) at once.
    public static func ping(_ url: DatabaseURL, role: String, timeout: Duration, patience: Duration = .zero, logger: Logger) async throws {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try await retrying(first: .milliseconds(100), cap: .seconds(1),
                               while: { error, delay in isServerSideSwitching(error) && clock.now + delay < start + patience },
                               onRetry: { error, delay in
                                   logger.warning("\(role) answers but its server side is switching; waiting", metadata: [
                                       "error": "\(describe(error))", "retry_in": "\(delay)"])
                               }) {
                try await withTimeout(timeout) {
                    let config = try url.connectionConfiguration(connectTimeout: timeout)
                    let connection = try await PostgresConnection.connect(configuration: config, id: 0, logger: logger)
                    defer { Task { try? await connection.close() } }
                    _ = try await connection.query("SELECT 1", logger: logger).collect()
                }
            }
        } catch {
            var reason = error is TimeoutError ? "no answer within \(timeout)" : describe(error)
            let waited = clock.now - start
            if waited > timeout { reason += " (still so after \(Int(waited.seconds)) s of waiting)" }
            throw PaymentsError.unreachable(role: role, endpoint: url.endpoint, reason: reason)
        }
    }

    /// The errors of a failover seen from behind a pooler: the pooler holding a login
    /// while no server takes it (a timeout), PgBouncer's "server login has been failing"
    /// (08P01, server_login_retry), a node shutting down or starting (57P01-57P03), a
    /// node demoted a moment ago (25006). Not PgBouncer's other 08P01s (an unknown
    /// database, a wrong password), which no wait fixes.
    static func isServerSideSwitching(_ error: any Error) -> Bool {
        if error is TimeoutError { return true }
        guard let psql = rootCause(error) as? PSQLError, let state = psql.serverInfo?[.sqlState] else { return false }
        if ["57P01", "57P02", "57P03", "25006"].contains(state) { return true }
        return state == "08P01" && (psql.serverInfo?[.message] ?? "").contains("server login")
    }
}
