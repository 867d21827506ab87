import Synchronization

/// Ends the claimer's idle wait early when new work is announced (an intake's NOTIFY,
/// heard by `QueueListener`). Polling stays the rule (DESIGN 4.7): the bell only shortens
/// a wait, and a wait that hears nothing ends when its poll is due.
///
/// A ring is kept until a wait takes it: work announced while a claim was running, or
/// between a wait's end and the claim after it, makes the next wait return at once instead
/// of sleeping past it. One waiter at a time (the pool's one claimer).
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    public init() {}

    public func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.rung = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Waits `duration` or until a ring, whichever is first (at once for a ring kept since
    /// the last wait); whether a ring ended it. A cancelled caller returns at once.
    @discardableResult
    public func wait(upTo duration: Duration) async -> Bool {
        if takeRing() { return true }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask { await self.untilRung() }
            await group.next()
            group.cancelAll()
        }
        // Taken here, not by the waiter: a ring between the timer's end and this line is
        // not lost (the claim that follows looks for its work).
        return takeRing()
    }

    private func takeRing() -> Bool {
        state.withLock { s in
            defer { s.rung = false }
            return s.rung
        }
    }

    /// Returns at a ring (or one already kept) or when cancelled; takes nothing.
    private func untilRung() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.rung || Task.isCancelled { return true }
                    precondition(s.waiter == nil, "a Doorbell has one waiter at a time")
                    s.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}
