import Synchronization

/// What one serve's worker services share: the claims in hand (the claimer adds them, the
/// completer removes them once recorded, the heartbeat extends their leases), the outcomes
/// waiting to be recorded, the gateway calls in flight and whether a stop was asked.
final class WorkerState: Sendable {
    private struct State {
        /// Claimed and not yet recorded, by (job, claim). Their leases are heartbeated.
        var held = HeldJobs()
        /// Claims whose outcome this process gave up recording: not orphans (a request may
        /// have left for them), left to the reaper, which counts the lost lease. Forgotten
        /// once the reaper must have taken them.
        var unrecorded: [HeldJobs.Key: ContinuousClock.Instant] = [:]
        var gatewayCalls = 0
        var stopRequestedAt: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    /// Outcomes the job tasks hand to the completer; closed when the claimer has ended.
    let completions = BatchQueue<Completion>()
    /// Outcomes whose queue rows another session holds locked, retried apart from the
    /// others; closed when the completers have ended.
    let lockedCompletions = BatchQueue<Completion>()
    /// Wakes a claimer waiting for room (a batch recorded, a stop asked, the heartbeat's nudge).
    let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init() {
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func wakeClaimer() { wake.yield() }

    var heldCount: Int { state.withLock { $0.held.count } }
    var heldClaims: [HeldJobs.Key] { state.withLock { $0.held.all } }
    /// The held claims whose lease is not known to last past `instant`.
    func claimsDue(before instant: ContinuousClock.Instant) -> [HeldJobs.Key] { state.withLock { $0.held.due(before: instant) } }
    /// The database extended these leases to `until` or later.
    func leasesExtended(_ keys: [HeldJobs.Key], until: ContinuousClock.Instant) {
        state.withLock { $0.held.extended(keys, until: until) }
    }
    var gatewayCalls: Int { state.withLock { $0.gatewayCalls } }

    /// Holds what a claim returned, each with a gateway call to come; the number now held.
    /// `leaseEnds`: when the claim's lease ends on the monotonic clock, counted from before
    /// the claim was sent (not from its wall-clock `leaseExpiresAt`: a clock stepped back
    /// meanwhile would make the lease look longer than it is); unknown: due at once.
    func hold(_ jobs: [ClaimedJob], leaseEnds: ContinuousClock.Instant = .now) -> Int {
        state.withLock { s in
            for job in jobs { s.held.hold(job.id, claim: job.claim, leaseEnds: leaseEnds) }
            s.gatewayCalls += jobs.count
            return s.held.count
        }
    }

    func gatewayCallEnded() { state.withLock { $0.gatewayCalls -= 1 } }

    /// Lets go of recorded claims (exactly those claims: a newer claim of a job stays held);
    /// the number still held.
    func release(_ batch: [Completion]) -> Int {
        state.withLock { s in
            for c in batch { s.held.release(c.jobID, claim: c.claim) }
            return s.held.count
        }
    }

    /// Outcomes given up: the jobs stay `running` under this owner until their lease
    /// expires, and must not be taken for orphans meanwhile (their request did leave).
    func markUnrecorded(_ batch: [Completion]) {
        state.withLock { s in for c in batch { s.unrecorded[HeldJobs.Key(id: c.jobID, claim: c.claim)] = .now } }
    }

    /// Every claim this process knows it received: held, or given up unrecorded since
    /// `forgetBefore` (older ones the reaper has taken by then).
    func knownClaims(forgetBefore: ContinuousClock.Instant) -> [HeldJobs.Key] {
        state.withLock { s in
            s.unrecorded = s.unrecorded.filter { $0.value > forgetBefore }
            return s.held.all + Array(s.unrecorded.keys)
        }
    }

    /// Records the stop (the first time only: true then) and wakes the claimer.
    func requestStop() -> Bool {
        let first = state.withLock { s -> Bool in
            guard s.stopRequestedAt == nil else { return false }
            s.stopRequestedAt = .now
            return true
        }
        wake.yield()
        return first
    }

    var isStopping: Bool { state.withLock { $0.stopRequestedAt != nil } }

    /// Whether a stop was asked longer than `after` ago.
    func stoppingLongerThan(_ after: Duration) -> Bool {
        state.withLock { s in s.stopRequestedAt.map { ContinuousClock.now - $0 > after } ?? false }
    }
}
