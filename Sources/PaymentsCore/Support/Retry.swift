// The retry and deadline toolkit, in Support/, used everywhere a wait could last for ever:
//   withTimeout / withDeadline (Timeout.swift): an operation within a time, the caller
//     freed at the deadline even when the operation ignores cancellation; withDeadline
//     names the service that did not answer.
//   retrying (here): again after each retryable error, the delay doubling to a cap.
//   Backoff (Backoff.swift): the worker's retry delays per attempt, with full jitter.
// Callers name theirs for what they bound: JobStore.inTransaction (a statement's server
// timeout, and the planner settings it runs with), LivePaymentsAPI.withinWriteDeadline,
// Enqueuer.withinDeadline and retryingWithinDeadline.

/// Runs `operation` until it succeeds, sleeping between tries with a delay that doubles
/// from `first` up to `cap`, for as long as `retryable` says an error (about to be slept
/// on for the given delay) deserves another try; any other error is thrown. `onRetry`
/// sees each retried error first (to log it). Cancellation ends the wait.
public func retrying<T: Sendable>(
    first: Duration, cap: Duration,
    while retryable: (any Error, Duration) -> Bool,
    onRetry: (any Error, Duration) -> Void = { _, _ in },
    _ operation: () async throws -> T
) async throws -> T {
    var delay = first
    while true {
        do {
            return try await operation()
        } catch where retryable(error, delay) {
            onRetry(error, delay)
            try await Task.sleep(for: delay)
            delay = min(delay * 2, cap)
        }
    }
}
