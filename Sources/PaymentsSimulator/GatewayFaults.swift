import PaymentsCore
import Synchronization

/// The faults `payments gateway` injects, as a payment provider shows them in production:
/// slow answers, requests that hang past any client's patience, answers lost after the
/// money moved, errors before it moved, and cards declined every time they are tried.
/// Every draw is a function of (seed, key, attempt), never of arrival order: the same seed
/// replays the same faults on the same requests however the run's timing falls, across
/// restarts of the gateway too.
public struct GatewayFaults: Sendable, Equatable {
    public var latencyMillis: Double = 20
    public var jitterMillis: Double = 10
    /// Share of requests that stall for `hangSeconds` before being processed.
    public var hangRate: Double = 0
    public var hangSeconds: Double = 120
    /// Share of charges made and then answered 503, as if the answer were lost on the way.
    public var lostAnswerRate: Double = 0
    /// Share of requests answered 503 without charging.
    public var errorRate: Double = 0
    /// Share of idempotency keys whose card is declined (402), the same verdict every time.
    public var declineRate: Double = 0
    public var seed: UInt64 = 1

    public init() {}

    public func validated() throws(PaymentsError) -> Self {
        guard latencyMillis >= 0, latencyMillis <= 60_000 else { throw .invalidOption("--latency-ms must be from 0 to 60000") }
        guard jitterMillis >= 0, jitterMillis <= 60_000 else { throw .invalidOption("--jitter-ms must be from 0 to 60000") }
        guard hangSeconds >= 0, hangSeconds <= 3_600 else { throw .invalidOption("--hang-seconds must be from 0 to 3600") }
        for (name, rate) in [("--hang-rate", hangRate), ("--lost-answer-rate", lostAnswerRate), ("--error-rate", errorRate), ("--decline-rate", declineRate)] {
            guard rate.isFinite, (0...1).contains(rate) else { throw .invalidOption("\(name) must be from 0 to 1, got \(rate)") }
        }
        guard errorRate + declineRate <= 1 else { throw .invalidOption("--error-rate + --decline-rate must not exceed 1") }
        return self
    }

    /// What happens to one charge request, drawn when it arrives.
    public struct Plan: Sendable, Equatable {
        public var delayMillis: Double
        public var hang: Bool
        public var errorBeforeCharge: Bool
        public var loseAnswer: Bool
        public var declined: Bool
    }

    /// The plan of the request for `key`'s attempt `attempt` (0 when the caller names none).
    public func plan(key: String, attempt: Int64) -> Plan {
        var random = SeededRandom(seed: fnv1a64("\(key)#\(attempt)", basis: 0xCBF2_9CE4_8422_2325 ^ seed))
        let delay = max(0, latencyMillis + (random.unit() * 2 - 1) * jitterMillis)
        return Plan(delayMillis: delay,
                    hang: random.unit() < hangRate,
                    errorBeforeCharge: random.unit() < errorRate,
                    loseAnswer: random.unit() < lostAnswerRate,
                    // Stable per key: a declined card stays declined on every retry.
                    declined: SeededRandom.unit(for: key, seed: seed) < declineRate)
    }
}
