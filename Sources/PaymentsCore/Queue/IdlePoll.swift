import Foundation

/// How long the claimer waits before its next claim, from what its last claims found.
///
/// Work arrives in bursts even at a steady rate (an intake commits a batch every few
/// milliseconds, or a client posts payments in a run), so an empty claim right after one
/// that found work means the next burst is not in yet, not that the queue went idle.
/// Backing off at once there (5, 10, 20 ms) made a payment arriving every 20 ms wait
/// ~11 ms at p50 for its claim at 1,200 payments/s (2026-12-06). So the wait stays short
/// for `patience` after the last claim that found work, and only then doubles up to
/// `maximum`, where an idle server stays (a poll every 40 ms costs it nothing).
///
/// How short follows the rate the claims have been finding work at: about one poll per
/// job, between `busyMinimum` (1 ms by default, at 1,000 jobs/s and more) and `minimum`
/// (5 ms, at 200 jobs/s and less). A fixed 1 ms took ~2 ms off the wait for a claim at
/// 1,300/s, but a trickle of 2 payments a second then kept 615 claims a second going and
/// cost 44% of a core (5 ms: 163 claims, 20%; 2026-12-07, docs/benchmarks.md).
public struct IdlePoll: Sendable, Equatable {
    public let minimum: Duration
    public let busyMinimum: Duration
    public let maximum: Duration
    public let patience: Duration
    private var wait: Duration
    private var lastFound: ContinuousClock.Instant?
    /// Jobs claimed, decaying with a time constant of a second: about the jobs a second.
    private var recent = 0.0
    private var lastClaim: ContinuousClock.Instant?

    public init(minimum: Duration, busyMinimum: Duration? = nil, maximum: Duration, patience: Duration) {
        self.minimum = minimum
        self.busyMinimum = min(busyMinimum ?? minimum, minimum)
        self.maximum = max(minimum, maximum)
        self.patience = patience
        self.wait = minimum
    }

    /// The wait before the next claim, after a claim at `now` that took `claimed` of the
    /// `wanted` jobs; nil: claim again at once (it took all it asked for, more may wait).
    public mutating func next(claimed: Int, wanted: Int, now: ContinuousClock.Instant) -> Duration? {
        if let lastClaim, now > lastClaim { recent *= exp(-(now - lastClaim).seconds) }
        lastClaim = now
        recent += Double(claimed)
        if claimed > 0 {
            lastFound = now
            wait = minimum
            return claimed < wanted ? shortWait : nil
        }
        if let lastFound, now - lastFound < patience { return shortWait }
        defer { wait = min(wait * 2, maximum) }
        return wait
    }

    /// About one poll per job at the recent rate, within [busyMinimum, minimum].
    var shortWait: Duration {
        guard recent > 0 else { return minimum }
        return max(busyMinimum, min(minimum, .seconds(fractional: 1 / recent)))
    }
}
