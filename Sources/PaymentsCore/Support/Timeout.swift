import Synchronization

public struct TimeoutError: Error, Sendable, CustomStringConvertible {
    public init() {}
    public var description: String { "timed out" }
}

/// Runs `operation`, throwing `TimeoutError` if it does not finish within `duration`
/// (`CancellationError` if the caller is cancelled first). The operation runs in its own
/// task and is cancelled on timeout, but the caller does not wait for it to notice: a
/// query stuck in a driver that ignores cancellation cannot hold the caller past the
/// deadline (a task group would wait for it).
public func withTimeout<T: Sendable>(_ duration: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let race = TimeoutRace<T>()
    return try await withTaskCancellationHandler {
        try await race.run(duration, operation)
    } onCancel: {
        race.cancel()
    }
}

/// `operation` within `deadline`; past it, `PaymentsError.unreachable` names the
/// service (`role` at `endpoint`) that did not answer, with `hint` for what to check.
/// Every wait on a pooler is bounded this way: PostgresNIO 1.33 may hold a connection
/// request for ever once logins fail, and a wait without end holds whatever waits on it
/// (a command's exit, the HTTP server's graceful drain).
public func withDeadline<T: Sendable>(_ deadline: Duration, role: String, endpoint: String, hint: String = "",
                                      _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    do {
        return try await withTimeout(deadline, operation)
    } catch is TimeoutError {
        throw PaymentsError.unreachable(role: role, endpoint: endpoint, reason: "no answer within \(deadline)\(hint.isEmpty ? "" : " (\(hint))")")
    }
}

/// Whichever of the operation, the timer and the caller's cancellation ends first
/// resumes the caller, once.
final class TimeoutRace<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let work = Mutex<Task<Void, Never>?>(nil)
    let timer = Mutex<Task<Void, Never>?>(nil)
    let cancelled = Mutex(false)

    func run(_ duration: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            self.start(continuation, duration, operation)
        }
    }

    private func start(_ continuation: CheckedContinuation<T, any Error>, _ duration: Duration,
                       _ operation: @escaping @Sendable () async throws -> T) {
        let race = self
        race.continuation.withLock { $0 = continuation }
        // The work is registered before the timer starts, so a timer that fires always
        // finds it to cancel.
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            race.timer.withLock { $0 }?.cancel()
            race.finish(result)
        }
        race.work.withLock { $0 = work }
        let timer = Task {
            try? await Task.sleep(for: duration)
            guard !Task.isCancelled else { return }
            race.finish(.failure(TimeoutError()))
            race.work.withLock { $0 }?.cancel()
        }
        race.timer.withLock { $0 = timer }
        // Finished before the timer was registered: stop the timer now.
        if race.continuation.withLock({ $0 == nil }) { timer.cancel() }
        // Cancelled before the tasks were registered: cancel them now.
        if cancelled.withLock({ $0 }) { cancel() }
    }

    func cancel() {
        cancelled.withLock { $0 = true }
        finish(.failure(CancellationError()))
        work.withLock { $0 }?.cancel()
        timer.withLock { $0 }?.cancel()
    }

    func finish(_ result: Result<T, any Error>) {
        continuation.withLock { c in
            defer { c = nil }
            return c
        }?.resume(with: result)
    }
}
