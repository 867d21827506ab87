import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The two connection pools of the contract: writes and claims through pgbouncer-write,
/// status reads through pgbouncer-read. Both use only unnamed statements (`query`),
/// never `PostgresPreparedStatement`, and no session state: see DESIGN.md section 2.
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
            group.addTask { await self.write.run() }
            group.addTask { await self.read.run() }
            defer { group.cancelAll() }
            // Let the run() tasks start before the first lease (PostgresNIO warns otherwise).
            try await Task.sleep(for: .milliseconds(20))
            return try await body()
        }
    }

    /// Fails fast, with the pooler's name and the reason, when a pooler does not answer.
    public func checkReachable(write checkWrite: Bool = true, read checkRead: Bool = false, timeout: Duration = .seconds(5)) async throws {
        if checkWrite { try await Self.ping(writeURL, role: "pgbouncer-write", timeout: timeout, logger: logger) }
        if checkRead { try await Self.ping(readURL, role: "pgbouncer-read", timeout: timeout, logger: logger) }
    }

    /// One dedicated connection and `SELECT 1`: unlike a pooled query, it surfaces the
    /// real cause (refused, authentication failed, unknown database) at once.
    public static func ping(_ url: DatabaseURL, role: String, timeout: Duration, logger: Logger) async throws {
        do {
            try await withTimeout(timeout) {
                let config = try url.connectionConfiguration(connectTimeout: timeout)
                let connection = try await PostgresConnection.connect(configuration: config, id: 0, logger: logger)
                defer { Task { try? await connection.close() } }
                _ = try await connection.query("SELECT 1", logger: logger).collect()
            }
        } catch is TimeoutError {
            throw PaymentsError.unreachable(role: role, endpoint: url.endpoint, reason: "no answer within \(timeout)")
        } catch {
            throw PaymentsError.unreachable(role: role, endpoint: url.endpoint, reason: describe(error))
        }
    }
}

public struct TimeoutError: Error, Sendable, CustomStringConvertible {
    public init() {}
    public var description: String { "timed out" }
}

/// Runs `operation`, throwing `TimeoutError` if it does not finish within `duration`.
/// The operation runs in its own task and is cancelled on timeout, but the caller does
/// not wait for it to notice: a query stuck in a driver that ignores cancellation cannot
/// hold the caller past the deadline (a task group would wait for it).
public func withTimeout<T: Sendable>(_ duration: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = TimeoutRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.continuation.withLock { $0 = continuation }
        let timer = Task {
            try? await Task.sleep(for: duration)
            guard !Task.isCancelled else { return }
            race.finish(.failure(TimeoutError()))
            race.work.withLock { $0 }?.cancel()
        }
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            timer.cancel()
            race.finish(result)
        }
        race.work.withLock { $0 = work }
    }
}

/// Whichever of the operation and the timer ends first resumes the caller, once.
final class TimeoutRace<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let work = Mutex<Task<Void, Never>?>(nil)

    func finish(_ result: Result<T, any Error>) {
        continuation.withLock { c in
            defer { c = nil }
            return c
        }?.resume(with: result)
    }
}
