import PaymentsCore
import Foundation
import Synchronization

/// The simulated gateway in-process (benchmarks, one serve only): configurable latency, transient-failure and decline rates, a
/// seed, and deduplication by idempotency key. Accepted charges can be journalled to a
/// file (one JSON line each) that every `serve` sharing it loads at start, so a charge
/// accepted by a process killed with SIGKILL is still known to its successor, as it
/// would be to a real gateway.
public final class SimulatedGateway: PaymentGateway {
    public struct Configuration: Sendable, Equatable {
        public var latencyMillis: Double = 20
        public var jitterMillis: Double = 10
        public var transientFailureRate: Double = 0.0
        public var declineRate: Double = 0.0
        public var seed: UInt64 = 1
        public var journalPath: String?

        public init(latencyMillis: Double = 20, jitterMillis: Double = 10, transientFailureRate: Double = 0, declineRate: Double = 0,
                    seed: UInt64 = 1, journalPath: String? = nil) {
            self.latencyMillis = latencyMillis
            self.jitterMillis = jitterMillis
            self.transientFailureRate = transientFailureRate
            self.declineRate = declineRate
            self.seed = seed
            self.journalPath = journalPath
        }

        public func validated() throws(PaymentsError) -> Self {
            guard latencyMillis >= 0, latencyMillis <= 60_000 else { throw .invalidOption("--gateway-latency-ms must be from 0 to 60000") }
            guard jitterMillis >= 0, jitterMillis <= 60_000 else { throw .invalidOption("--gateway-jitter-ms must be from 0 to 60000") }
            guard (0...1).contains(transientFailureRate) else { throw .invalidOption("--gateway-transient-failure-rate must be from 0 to 1") }
            guard (0...1).contains(declineRate) else { throw .invalidOption("--gateway-decline-rate must be from 0 to 1") }
            guard transientFailureRate + declineRate <= 1 else { throw .invalidOption("transient-failure rate + decline rate must not exceed 1") }
            return self
        }
    }

    public typealias Counts = GatewayCounts

    struct State {
        var charges: [String: ChargeRecord] = [:]
        var random: SeededRandom
        var counts = Counts()
        var nextCharge = 0
    }

    public let configuration: Configuration
    private let state: Mutex<State>
    private let journal: FileHandle?
    private let instance = UInt32.random(in: 0 ... .max)

    public init(_ configuration: Configuration) throws {
        self.configuration = try configuration.validated()
        var charges: [String: ChargeRecord] = [:]
        if let path = configuration.journalPath {
            let journal = try ChargeJournal.open(path)
            for record in journal.records { charges[record.key] = record }
            self.journal = FileHandle(fileDescriptor: journal.fd, closeOnDealloc: true)
        } else {
            self.journal = nil
        }
        self.state = Mutex(State(charges: charges, random: SeededRandom(seed: configuration.seed ^ UInt64(instance))))
    }

    public var counts: GatewayCounts? { state.withLock { $0.counts } }

    public func charge(_ request: ChargeRequest) async -> ChargeOutcome {
        // The only suspension is the sleep; the rest runs in synchronous functions, on the
        // thread's stack: an async function's locals live in its task's frame for the whole
        // call, and this frame is held by every payment in flight (heaptrack, 2026-12-06:
        // 2.6 KB of frames per call here, with 100,000 calls in flight).
        let (latency, remaining) = plan(request)
        let wait = min(latency, max(0, remaining))
        if wait > 0 {
            do { try await Task.sleep(for: .microseconds(Int64(wait * 1000))) } catch { return .abandoned }
        }
        return answer(request, late: latency >= remaining)
    }

    /// The call's latency and the milliseconds left to its deadline: it answers by the
    /// deadline (PaymentGateway's contract), so a call slower than that is cut short at it,
    /// uncharged, as the external gateway refuses a late request.
    @inline(never)
    private func plan(_ request: ChargeRequest) -> (latency: Double, remaining: Double) {
        let latency = state.withLock { s -> Double in
            s.counts.calls += 1
            return max(0, configuration.latencyMillis + (s.random.unit() * 2 - 1) * configuration.jitterMillis)
        }
        return (latency, request.deadline.map { $0.timeIntervalSinceNow * 1000 } ?? .infinity)
    }

    @inline(never)
    private func answer(_ request: ChargeRequest, late: Bool) -> ChargeOutcome {
        if late {
            return .transientFailure(reason: "no answer from the gateway within the request's deadline; outcome unknown")
        }
        // A card is declined every time it is tried: the verdict is a stable draw per key.
        let declined = SeededRandom.unit(for: request.idempotencyKey, seed: configuration.seed) < configuration.declineRate
        var newRecord: ChargeRecord?
        let outcome = state.withLock { s -> ChargeOutcome in
            if let existing = s.charges[request.idempotencyKey] {
                s.counts.duplicates += 1
                guard existing.matches(request.payment) else {
                    return .keyHeldByAnotherCharge(reason: "the key was charged \(existing.amountMinor) \(existing.currency)")
                }
                return .accepted(existing)
            }
            let draw = s.random.unit()
            // Half the transient failures happen before the charge, half after it (the
            // response is lost): the retry must then be answered from the dedup record.
            let transient = draw < configuration.transientFailureRate
            let failsBeforeCharge = transient && draw < configuration.transientFailureRate / 2
            if failsBeforeCharge {
                s.counts.transientFailures += 1
                return .transientFailure(reason: "gateway timeout (simulated, before charge)")
            }
            if declined {
                s.counts.declined += 1
                return .declined(code: "card_declined", reason: "card declined (simulated)")
            }
            s.nextCharge += 1
            let record = ChargeRecord(key: request.idempotencyKey, chargeID: "ch_\(String(instance, radix: 36))_\(s.nextCharge)",
                                      jobID: request.jobID, amountMinor: request.payment.amountMinor, currency: request.payment.currency)
            s.charges[request.idempotencyKey] = record
            s.counts.accepted += 1
            newRecord = record
            if transient {
                s.counts.transientFailures += 1
                return .transientFailure(reason: "gateway timeout (simulated, after charge)")
            }
            return .accepted(record)
        }
        if let newRecord, let journal { Self.append(newRecord, to: journal) }
        return outcome
    }

    public func lookup(idempotencyKey: String) async throws -> ChargeRecord? {
        state.withLock { $0.charges[idempotencyKey] }
    }

    private static func append(_ record: ChargeRecord, to handle: FileHandle) {
        // One write(2) per line on an O_APPEND descriptor: lines from several processes
        // never interleave, and a SIGKILL loses nothing already written.
        _ = ChargeJournal.write(fd: handle.fileDescriptor, ChargeJournal.lines([record.json]))
    }
}
