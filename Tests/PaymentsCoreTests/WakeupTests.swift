import PaymentsCore
import Synchronization
import Testing

/// The claimer's doorbell and the intakes' announcements that ring it (no database).
@Suite struct DoorbellTests {
    @Test func aRingKeptFromBeforeTheWaitEndsItAtOnceAndIsTakenOnce() async {
        let bell = Doorbell()
        bell.ring()
        bell.ring()  // rings while nobody waits are one ring
        #expect(await bell.wait(upTo: .seconds(60)))
        #expect(await bell.wait(upTo: .milliseconds(20)) == false)
    }

    @Test func aRingDuringTheWaitEndsIt() async {
        let bell = Doorbell()
        let ringer = Task {
            try? await Task.sleep(for: .milliseconds(50))
            bell.ring()
        }
        // Unrung, the wait would last a minute: the test would hang, not pass.
        #expect(await bell.wait(upTo: .seconds(60)))
        await ringer.value
    }

    @Test func anUnrungWaitEndsWhenItsPollIsDue() async {
        let bell = Doorbell()
        #expect(await bell.wait(upTo: .milliseconds(30)) == false)
        // The bell still works after a wait that timed out (its waiter was let go).
        bell.ring()
        #expect(await bell.wait(upTo: .seconds(60)))
    }

    /// A service group stopping cancels the claimer in its wait: it returns then.
    @Test func aCancelledWaitReturns() async {
        let bell = Doorbell()
        let waiter = Task { await bell.wait(upTo: .seconds(60)) }
        try? await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        #expect(await waiter.value == false)
    }

    /// Rings from many threads while the claimer waits again and again: no ring is lost
    /// between the end of one wait and the start of the next (the last ring is heard).
    @Test func ringsFromEverywhereAreNeverLost() async {
        let bell = Doorbell()
        let rung = RingCount()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for _ in 0..<500 {
                        bell.ring()
                        rung.add()
                        await Task.yield()
                    }
                }
            }
            group.addTask {
                while rung.value < 4_000 { await bell.wait(upTo: .milliseconds(1)) }
            }
        }
        bell.ring()
        #expect(await bell.wait(upTo: .seconds(60)))
    }
}

final class RingCount: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

@Suite struct WorkAnnouncerTests {
    let start = ContinuousClock.now

    /// One announcement per interval: the commits between are found by the poll.
    @Test func announcesAtMostOncePerInterval() {
        let announcer = WorkAnnouncer(interval: .milliseconds(10))
        func announces(at ms: Int) -> Bool {
            guard let ticket = announcer.take(now: start + .milliseconds(ms)) else { return false }
            ticket.release()
            return true
        }
        #expect(announces(at: 0))
        #expect(!announces(at: 3))
        #expect(!announces(at: 9))
        #expect(announces(at: 10))
        #expect(!announces(at: 12))
        #expect(announces(at: 25))
    }

    /// One announcing transaction at a time: notifying commits queue on PostgreSQL's lock,
    /// each holding a server connection, so a second waits for the first to end.
    @Test func oneAnnouncementInFlightAtATime() {
        let announcer = WorkAnnouncer(interval: .milliseconds(10))
        let first = announcer.take(now: start)
        #expect(first != nil)
        #expect(announcer.take(now: start + .seconds(1)) == nil, "the first is still in flight")
        first?.release()
        let second = announcer.take(now: start + .seconds(1))
        #expect(second != nil)
        second?.release()
    }

    /// Callers race for the same instant: one of them announces.
    @Test func ofCommitsAtOnceOneAnnounces() async {
        let announcer = WorkAnnouncer(interval: .seconds(60))
        let now = start
        let announced = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 { group.addTask { announcer.take(now: now) != nil } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(announced == 1)
    }
}
