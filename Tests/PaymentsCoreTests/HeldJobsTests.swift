import Foundation
import Logging
import PaymentsCore
import Testing

@Suite struct HeldJobsTests {
    /// Defect: the in-flight map was keyed by job id alone. After a lost lease and a
    /// reclaim by the same process, the old attempt's completion released the new
    /// attempt, which then stopped being heartbeated and ran again.
    @Test func aLateCompletionOfAnOldAttemptKeepsTheNewAttemptHeld() {
        var held = HeldJobs()
        held.hold(7, claim: 1)
        // Lease of attempt 1 lost; the reaper requeued job 7; this process claims it again.
        held.hold(7, claim: 2)
        held.release(7, claim: 1)  // attempt 1's (fenced-off) completion comes back
        #expect(held.contains(7, claim: 2))
        #expect(held.all == [HeldJobs.Key(id: 7, claim: 2)], "attempt 2's lease must still be extended")
        #expect(held.count == 1)
        held.release(7, claim: 2)
        #expect(held.count == 0 && held.all.isEmpty)
    }

    /// The heartbeat extends the leases that end within its window, not every lease held:
    /// a payment answered in milliseconds is never locked by it.
    @Test func onlyLeasesEndingWithinTheWindowAreDue() {
        let now = ContinuousClock.now
        var held = HeldJobs()
        held.hold(1, claim: 1, leaseEnds: now + .seconds(30))
        held.hold(2, claim: 1, leaseEnds: now + .seconds(1))
        held.hold(3, claim: 1)  // unknown: due at once
        // The soonest to end first, whatever the dictionary's order.
        #expect(held.due(before: now + .seconds(5)) == [HeldJobs.Key(id: 3, claim: 1), HeldJobs.Key(id: 2, claim: 1)])
        held.release(3, claim: 1)
        held.extended([HeldJobs.Key(id: 2, claim: 1), HeldJobs.Key(id: 3, claim: 1)], until: now + .seconds(31))
        #expect(held.due(before: now + .seconds(5)).isEmpty)
        #expect(!held.contains(3, claim: 1), "an extension must not hold again a claim released meanwhile")
        // What the database set is what is known, even shorter than before.
        held.extended([HeldJobs.Key(id: 1, claim: 1)], until: now + .seconds(2))
        #expect(held.due(before: now + .seconds(5)) == [HeldJobs.Key(id: 1, claim: 1)])
    }
}

@Suite struct LogThrottleTests {
    /// During an outage a retry loop logs its warning once per interval, not per retry.
    @Test func repeatsAreSuppressedAndCounted() {
        let recorder = RecordingLogHandler.Store()
        let logger = Logger(label: "t") { _ in RecordingLogHandler(store: recorder) }
        let throttle = LogThrottle(interval: .seconds(5))
        let start = ContinuousClock.now
        for i in 0..<100 { throttle.log(logger, .warning, "claim failed", now: start + .milliseconds(i * 10)) }
        #expect(recorder.messages == ["claim failed"])
        throttle.log(logger, .warning, "claim failed", now: start + .seconds(6))
        #expect(recorder.messages.count == 2)
        #expect(recorder.lastMetadata["suppressed_since_last"] == "99")
        throttle.log(logger, .warning, "another message", now: start + .seconds(6))
        #expect(recorder.messages.count == 3)
    }
}

struct RecordingLogHandler: LogHandler {
    final class Store: @unchecked Sendable {
        private let lock = NSLock()
        private var _messages: [String] = []
        private var _metadata: Logger.Metadata = [:]
        var messages: [String] { lock.withLock { _messages } }
        var lastMetadata: [String: String] { lock.withLock { _metadata.mapValues { "\($0)" } } }
        func append(_ message: String, _ metadata: Logger.Metadata?) {
            lock.withLock { _messages.append(message); _metadata = metadata ?? [:] }
        }
    }
    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { store.append("\(event.message)", event.metadata) }
}
