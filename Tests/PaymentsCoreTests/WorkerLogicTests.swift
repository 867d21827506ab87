import Foundation
import Testing
import PaymentsCore
import PaymentsSimulator

@Suite struct BackoffTests {
    @Test func ceilingDoublesUpToTheCap() {
        let backoff = Backoff(base: .milliseconds(100), cap: .seconds(1))
        #expect(backoff.ceiling(afterAttempt: 1) == .milliseconds(100))
        #expect(backoff.ceiling(afterAttempt: 2) == .milliseconds(200))
        #expect(backoff.ceiling(afterAttempt: 4) == .milliseconds(800))
        #expect(backoff.ceiling(afterAttempt: 5) == .seconds(1))
        #expect(backoff.ceiling(afterAttempt: 500) == .seconds(1))
    }

    @Test func fullJitterSpreadsOverTheWholeRange() {
        let backoff = Backoff(base: .milliseconds(100), cap: .seconds(60))
        var random = SeededRandom(seed: 9)
        let delays = (0..<5_000).map { _ in backoff.delay(afterAttempt: 3, using: &random) }
        #expect(delays.allSatisfy { $0 >= .zero && $0 <= .milliseconds(400) })
        #expect(delays.min()! < .milliseconds(20), "full jitter reaches near zero")
        #expect(delays.max()! > .milliseconds(380), "and near the ceiling")
    }
}

@Suite struct SimulatedGatewayTests {
    func request(_ key: String, id: Int64 = 1) -> ChargeRequest {
        ChargeRequest(idempotencyKey: key, payment: Payment(amountMinor: 100, currency: "EUR", debtor: "a", creditor: "b"), jobID: id, attempt: 1)
    }

    @Test func deduplicatesByIdempotencyKey() async throws {
        let gateway = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0))
        let first = await gateway.charge(request("k1"))
        let second = await gateway.charge(request("k1"))
        #expect(first == second)
        guard case .accepted = first else { Issue.record("expected acceptance, got \(first)"); return }
        #expect(gateway.counts?.accepted == 1)
        #expect(gateway.counts?.duplicates == 1)
        #expect(try await gateway.lookup(idempotencyKey: "k1") != nil)
        #expect(try await gateway.lookup(idempotencyKey: "nope") == nil)
    }

    @Test func declinesAreStablePerKeyAndRatesHold() async throws {
        let gateway = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0, transientFailureRate: 0.1, declineRate: 0.05, seed: 3))
        var declined = 0, transient = 0
        for i in 0..<4_000 {
            switch await gateway.charge(request("key-\(i)")) {
            case .declined:
                declined += 1
                // The same card is never accepted later (it is declined again, or the call times out).
                if case .accepted = await gateway.charge(request("key-\(i)")) { Issue.record("declined key-\(i) was accepted on retry") }
            case .transientFailure: transient += 1
            default: break
            }
        }
        #expect((120...280).contains(declined), "declined \(declined) of 4000 at 5%")
        #expect((250...550).contains(transient), "transient \(transient) of 4000 at 10%")
    }

    @Test func aJournalSurvivesTheProcess() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let charged: ChargeRecord
        do {
            let first = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0, journalPath: path))
            guard case let .accepted(record) = await first.charge(request("persisted", id: 7)) else { Issue.record("not accepted"); return }
            charged = record
        }
        // A new gateway on the same journal (a restarted server, the first one gone) knows the charge.
        let second = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0, journalPath: path))
        #expect(await second.charge(request("persisted", id: 7)) == .accepted(charged))
        #expect(second.counts?.accepted == 0)
        #expect(try ChargeJournal.read(path).map(\.key) == ["persisted"])
    }

    @Test func rejectsImpossibleRates() {
        #expect(throws: PaymentsError.self) { try SimulatedGateway(.init(transientFailureRate: 1.5)) }
        #expect(throws: PaymentsError.self) { try SimulatedGateway(.init(transientFailureRate: 0.6, declineRate: 0.6)) }
        #expect(throws: PaymentsError.self) { try SimulatedGateway(.init(latencyMillis: -1)) }
    }
}

@Suite struct BatchQueueTests {
    @Test func drainsInBatchesThenEndsWhenClosed() async {
        let queue = BatchQueue<Int>()
        for i in 0..<10 { queue.append(i) }
        #expect(await queue.take(max: 4) == [0, 1, 2, 3])
        #expect(await queue.take(max: 100) == [4, 5, 6, 7, 8, 9])
        async let waiting = queue.take(max: 10)
        try? await Task.sleep(for: .milliseconds(20))
        queue.append(42)
        #expect(await waiting == [42])
        queue.close()
        #expect(await queue.take(max: 10) == nil)
    }

    /// What is appended after `close` is still taken before nil: the completer's task for
    /// outcomes waiting on a row lock parks what is still locked back into its queue after
    /// the queue closed, and those outcomes must be recorded or given up, never dropped.
    @Test func appendsAfterCloseAreStillTaken() async {
        let queue = BatchQueue<Int>()
        queue.append(contentsOf: [1, 2])
        queue.close()
        #expect(await queue.take(max: 10) == [1, 2])
        queue.append(contentsOf: [3])
        #expect(await queue.take(max: 10) == [3])
        #expect(await queue.take(max: 10) == nil)
    }
}

@Suite struct TimeoutTests {
    @Test func returnsTheResultInTime() async throws {
        #expect(try await withTimeout(.seconds(5)) { 42 } == 42)
    }

    /// An operation that ignores cancellation (as a driver waiting on a socket may) must
    /// not hold the caller past the deadline. It runs 30 s; the bound is half of that, so
    /// the suites starting together on two cores (2.2 s for this test once, under a 2 s
    /// bound for a 3 s operation) cannot fail it, and waiting for the operation cannot pass.
    @Test func doesNotWaitForAnOperationThatIgnoresCancellation() async {
        let start = ContinuousClock.now
        do {
            _ = try await withTimeout(.milliseconds(100)) {
                let until = ContinuousClock.now + .seconds(30)
                while ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(10)) }
                return 1
            }
            Issue.record("expected a timeout")
        } catch {
            #expect(error is TimeoutError)
        }
        #expect(ContinuousClock.now - start < .seconds(15))
    }

    /// A cancelled caller (a service group ending) is not held until the deadline (30 s;
    /// the bound is a third of it, for the same reason as above).
    @Test func endsAtOnceWhenTheCallerIsCancelled() async {
        let task = Task { try await withTimeout(.seconds(30)) { try await Task.sleep(for: .seconds(30)); return 1 } }
        try? await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        task.cancel()
        let result = await task.result
        #expect(ContinuousClock.now - start < .seconds(10))
        guard case let .failure(error) = result else { Issue.record("expected cancellation"); return }
        #expect(error is CancellationError)
    }

    @Test func passesErrorsThrough() async {
        await #expect(throws: PaymentsError.self) {
            try await withTimeout(.seconds(5)) { () async throws -> Int in throw PaymentsError.invalidOption("x") }
        }
    }
}

/// The retry loop behind the enqueue's batches and the start-up ping.
@Suite struct RetryingTests {
    struct Flaky: Error {}
    struct Fatal: Error {}
    final class Tries: @unchecked Sendable { var count = 0; var delays: [Duration] = [] }

    @Test func retriesWhileAllowedWithADoublingCappedDelay() async throws {
        let tries = Tries()
        let value = try await retrying(first: .milliseconds(1), cap: .milliseconds(4),
                                       while: { error, _ in error is Flaky },
                                       onRetry: { _, delay in tries.delays.append(delay) }) { () async throws -> Int in
            tries.count += 1
            if tries.count < 5 { throw Flaky() }
            return 42
        }
        #expect(value == 42)
        #expect(tries.count == 5)
        #expect(tries.delays == [.milliseconds(1), .milliseconds(2), .milliseconds(4), .milliseconds(4)])
    }

    @Test func throwsAnErrorItMayNotRetryAtOnce() async {
        let tries = Tries()
        await #expect(throws: Fatal.self) {
            try await retrying(first: .milliseconds(1), cap: .milliseconds(4), while: { error, _ in error is Flaky }) { () async throws -> Int in
                tries.count += 1
                throw Fatal()
            }
        }
        #expect(tries.count == 1)
    }

    @Test func stopsWhenThePredicateSaysTheWaitIsOver() async {
        let tries = Tries()
        await #expect(throws: Flaky.self) {
            try await retrying(first: .milliseconds(1), cap: .milliseconds(1), while: { _, _ in tries.count < 3 }) { () async throws -> Int in
                tries.count += 1
                throw Flaky()
            }
        }
        #expect(tries.count == 3)
    }
}
