import PaymentsCore
import Synchronization

/// One read of a source at a time. A read still running when the next collection asks
/// is waited on again instead of started twice, so a slow database or a source that
/// answers its headers and then stalls holds one query or one request, never one per
/// second; a result that arrives after its collection gave up is taken by the next one
/// while it is fresh.
final class SingleFlight<Value: Sendable>: Sendable {
    private struct Flight: Sendable {
        let id: UInt64
        let task: Task<Value, any Error>
        var finishedAt: ContinuousClock.Instant?
    }

    private let state = Mutex<(nextID: UInt64, flight: Flight?)>((0, nil))
    /// How long a result nobody took stays usable.
    let freshness: Duration

    init(freshness: Duration = .seconds(2)) {
        self.freshness = freshness
    }

    /// The running (or fresh, untaken) read's result, else a new read's; `TimeoutError`
    /// when none is there within `timeout` (the read goes on, bounded by its own timeout).
    func run(within timeout: Duration, _ operation: @escaping @Sendable () async throws -> Value) async -> Result<Value, any Error> {
        let flight = state.withLock { s -> Flight in
            if let flight = s.flight, flight.finishedAt.map({ ContinuousClock.now - $0 < freshness }) ?? true {
                return flight
            }
            s.nextID += 1
            let id = s.nextID
            // The lock is held until the flight is stored, so the task's note that it
            // finished always finds its own flight.
            let task = Task { [weak self] in
                defer { self?.state.withLock { if $0.flight?.id == id { $0.flight?.finishedAt = .now } } }
                return try await operation()
            }
            s.flight = Flight(id: id, task: task)
            return s.flight!
        }
        let result = await Result { try await withTimeout(timeout) { try await flight.task.value } }
        if case .failure(let error) = result, error is TimeoutError {
            return result
        }
        state.withLock { if $0.flight?.id == flight.id { $0.flight = nil } }
        return result
    }

    /// Whether a read is under way (tests).
    var isRunning: Bool { state.withLock { $0.flight.map { $0.finishedAt == nil } ?? false } }
}
