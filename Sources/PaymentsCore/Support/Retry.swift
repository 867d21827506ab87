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
