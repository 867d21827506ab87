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
}
