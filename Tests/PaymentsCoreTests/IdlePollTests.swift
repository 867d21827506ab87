import PaymentsCore
import Testing

/// The claimer's wait between claims.
@Suite struct IdlePollTests {
    let start = ContinuousClock.now

    @Test func aFullClaimClaimsAgainAtOnceAndATrickleWaitsTheMinimum() {
        var poll = IdlePoll(minimum: .milliseconds(5), maximum: .milliseconds(40), patience: .seconds(1))
        #expect(poll.next(claimed: 500, wanted: 500, now: start) == nil)
        #expect(poll.next(claimed: 3, wanted: 500, now: start) == .milliseconds(5))
    }

    /// Empty claims between bursts of a steady stream do not back off (a burst every 20 ms
    /// waited 5, 10, 20 ms: ~11 ms at p50 for its claim).
    @Test func emptyClaimsWithinThePatienceAfterWorkWaitTheMinimum() {
        var poll = IdlePoll(minimum: .milliseconds(5), maximum: .milliseconds(40), patience: .seconds(1))
        _ = poll.next(claimed: 24, wanted: 500, now: start)
        for ms in [5, 10, 15, 999] {
            #expect(poll.next(claimed: 0, wanted: 500, now: start + .milliseconds(ms)) == .milliseconds(5), "\(ms) ms after work")
        }
    }

    /// Idle past the patience (or from the start): 5, 10, 20, 40, 40 ms; work found resets it.
    @Test func anIdleQueueBacksOffToTheMaximumAndWorkResetsIt() {
        var poll = IdlePoll(minimum: .milliseconds(5), maximum: .milliseconds(40), patience: .seconds(1))
        let waits = (0..<5).map { _ in poll.next(claimed: 0, wanted: 500, now: start) }
        #expect(waits == [5, 10, 20, 40, 40].map { .milliseconds($0) })
        _ = poll.next(claimed: 1, wanted: 500, now: start)
        let later = start + .seconds(2)
        #expect(poll.next(claimed: 0, wanted: 500, now: later) == .milliseconds(5))
        #expect(poll.next(claimed: 0, wanted: 500, now: later) == .milliseconds(10))
    }

    /// The short wait follows the rate the claims find work at: about one poll per job,
    /// from `minimum` at a trickle to `busyMinimum` at 1,000 jobs a second and more.
    @Test(arguments: [(20, 26, 1.0), (20, 8, 2.5), (500, 1, 5.0), (20, 2, 5.0)])
    func theShortWaitFollowsTheRateWorkIsFoundAt(everyMs: Int, jobs: Int, expectedMs: Double) {
        var poll = IdlePoll(minimum: .milliseconds(5), busyMinimum: .milliseconds(1), maximum: .milliseconds(40), patience: .seconds(1))
        var now = start
        // Ten seconds of bursts: `jobs` every `everyMs` (1,300/s, 400/s, 2/s, 100/s).
        for _ in 0..<(10_000 / everyMs) {
            _ = poll.next(claimed: jobs, wanted: 500, now: now)
            now += .milliseconds(everyMs)
        }
        let wait = poll.next(claimed: 0, wanted: 500, now: now - .milliseconds(everyMs / 2))
        guard let wait else { Issue.record("no wait"); return }
        #expect(abs(wait.seconds * 1000 - expectedMs) < 0.3, "\(wait) for \(jobs) jobs every \(everyMs) ms")
    }

    /// A burst of busy seconds does not keep an idle server polling fast: past the
    /// patience it backs off as always, and work after a long pause starts at `minimum`.
    @Test func aBusySpellDecaysBackToTheMinimum() {
        var poll = IdlePoll(minimum: .milliseconds(5), busyMinimum: .milliseconds(1), maximum: .milliseconds(40), patience: .seconds(1))
        var now = start
        for _ in 0..<100 {
            _ = poll.next(claimed: 100, wanted: 500, now: now)
            now += .milliseconds(10)
        }
        #expect(poll.next(claimed: 0, wanted: 500, now: now) == .milliseconds(1))
        #expect(poll.next(claimed: 0, wanted: 500, now: now + .seconds(2)) == .milliseconds(5))
        #expect(poll.next(claimed: 0, wanted: 500, now: now + .seconds(2)) == .milliseconds(10))
        #expect(poll.next(claimed: 1, wanted: 500, now: now + .seconds(20)) == .milliseconds(5))
    }
}

