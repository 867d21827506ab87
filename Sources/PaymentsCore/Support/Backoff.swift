/// Exponential backoff with full jitter: a uniform delay in [0, min(cap, base * 2^(n-1))]
/// after the n-th failed attempt, so retries of many jobs spread out instead of
/// returning in waves.
public struct Backoff: Sendable, Equatable {
    public var base: Duration
    public var cap: Duration

    public init(base: Duration = .milliseconds(500), cap: Duration = .seconds(60)) {
        self.base = base
        self.cap = cap
    }

    /// The ceiling of the delay after `attempt` failed attempts (1-based).
    public func ceiling(afterAttempt attempt: Int) -> Duration {
        let exponent = max(0, min(attempt - 1, 40))
        return .seconds(fractional: min(cap.seconds, base.seconds * Double(UInt64(1) << UInt64(exponent))))
    }

    public func delay<R: RandomNumberGenerator>(afterAttempt attempt: Int, using random: inout R) -> Duration {
        let ceiling = ceiling(afterAttempt: attempt)
        return .seconds(fractional: Double.random(in: 0...1, using: &random) * ceiling.seconds)
    }
}
