import Metrics
import Synchronization

/// The worker's swift-metrics instruments (exported by /metrics) and running totals (for
/// the periodic log line, /v1/stats and the demo).
public final class WorkerMetrics: Sendable {
    /// Where a payment's time goes between its enqueue and its completion, on the worker:
    /// waiting to be claimed (due to claimed, the database's clock), the claim statement, the
    /// gateway call, waiting for its completion batch, and that batch's statement.
    public enum Stage: String, Sendable, CaseIterable, Encodable {
        case claimWait = "claim_wait", claim, gateway, completionWait = "completion_wait", completionCommit = "completion_commit"
    }

    public struct Totals: Sendable, Equatable {
        public var claimed = 0
        public var succeeded = 0
        public var retried = 0
        public var failed = 0
        public var released = 0
        public var fencedOff = 0
        public var reaped = 0
        /// Moved to `reconciling` (unknown outcome on the last attempt) by this process.
        public var toReconcile = 0
        /// Settled by this process's reconciler: posted, or failed as never charged.
        public var reconciledSucceeded = 0
        public var reconciledFailed = 0
        /// Reconciler: proven uncharged within the budget and queued again; cancelled on the
        /// gateway's proof; held for an operator (a charge for another amount).
        public var reconciledRequeued = 0
        public var reconciledCancelled = 0
        public var held = 0
        /// Not attempts: another request for the key was still in progress at the gateway.
        public var delayed = 0
        /// Failed jobs by reason (the closed set), by this process's workers and reconciler.
        public var failedBy: [FailureReason: Int] = [:]
        public var orphansReleased = 0
        public var inFlight = 0
        /// The most jobs held at once since start.
        public var peakInFlight = 0
        public var databaseErrors = 0
        /// Announcements of new payments heard (QueueListener), and whether it listens now.
        public var wakeups = 0
        public var listening = false

        public init() {}
    }

    let claimed = Counter(label: "payments_jobs_claimed_total")
    let succeeded = Counter(label: "payments_jobs_succeeded_total")
    let retried = Counter(label: "payments_jobs_retried_total")
    let failed = Counter(label: "payments_jobs_failed_total")
    let released = Counter(label: "payments_jobs_released_total")
    let fencedOff = Counter(label: "payments_jobs_lease_lost_total")
    let reaped = Counter(label: "payments_jobs_reaped_total")
    let toReconcile = Counter(label: "payments_jobs_reconciling_total")
    let reconciledSucceeded = Counter(label: "payments_jobs_reconciled_total", dimensions: [("outcome", "succeeded")])
    let reconciledFailed = Counter(label: "payments_jobs_reconciled_total", dimensions: [("outcome", "failed")])
    let reconciledRequeued = Counter(label: "payments_jobs_reconciled_total", dimensions: [("outcome", "requeued")])
    let reconciledCancelled = Counter(label: "payments_jobs_reconciled_total", dimensions: [("outcome", "cancelled")])
    let held = Counter(label: "payments_jobs_held_total")
    let delayed = Counter(label: "payments_jobs_delayed_total")
    /// `payments_jobs_failed_by_reason_total{reason=…}`: one series per reason of the closed set.
    let failedByReason: [FailureReason: Counter] = Dictionary(uniqueKeysWithValues: FailureReason.allCases.map {
        ($0, Counter(label: "payments_jobs_failed_by_reason_total", dimensions: [("reason", $0.rawValue)]))
    })
    let orphans = Counter(label: "payments_jobs_orphans_released_total")
    let databaseErrors = Counter(label: "payments_database_errors_total")
    let inFlightGauge = Gauge(label: "payments_jobs_in_flight")
    let wakeupsHeard = Counter(label: "payments_queue_wakeups_total")
    let listeningGauge = Gauge(label: "payments_queue_listening")
    let claimBatch = Recorder(label: "payments_claim_batch_size", aggregate: true)
    let latency = Timer(label: "payments_job_latency_seconds", preferredDisplayUnit: .seconds)
    /// `payments_job_stage_seconds{stage=…}`: one histogram per stage.
    let stageTimers: [Stage: Timer] = Dictionary(uniqueKeysWithValues: Stage.allCases.map {
        ($0, Timer(label: "payments_job_stage_seconds", dimensions: [("stage", $0.rawValue)], preferredDisplayUnit: .seconds))
    })
    private let stageHistograms = Mutex(Dictionary(uniqueKeysWithValues: Stage.allCases.map { ($0, LatencyHistogram()) }))

    private let totals = Mutex(Totals())
    private let latencies = Mutex(LatencyHistogram())
    /// Latencies since the dashboard last took them (bounded: a dashboard that stopped
    /// asking must not grow it).
    private let recent = Mutex<[Double]>([])
    static let recentCap = 50_000

    public init() {}

    public var snapshot: Totals { totals.withLock { $0 } }

    /// Enqueue-to-completion latency percentiles (seconds) over the completed jobs seen.
    public func latencyPercentiles(_ ps: [Double]) -> [Double] { latencies.withLock { $0.percentiles(ps) } }

    /// One sample per job of `stage` (seconds): a batch's, or one call's as
    /// `CollectionOfOne` (the gateway's, once per call: no array per call).
    func recordStage(_ stage: Stage, _ seconds: some Collection<Double>) {
        guard !seconds.isEmpty, let timer = stageTimers[stage] else { return }
        for s in seconds { timer.recordNanoseconds(Int64(max(0, s) * 1e9)) }
        stageHistograms.withLock { $0[stage]?.add(seconds) }
    }

    /// Each stage's percentiles (seconds) over the jobs seen.
    public func stagePercentiles(_ ps: [Double]) -> [Stage: [Double]] {
        stageHistograms.withLock { $0.mapValues { $0.percentiles(ps) } }
    }

    func recordClaim(_ n: Int) {
        claimBatch.record(n)
        guard n > 0 else { return }
        claimed.increment(by: n)
        totals.withLock { $0.claimed += n }
    }

    func setInFlight(_ n: Int) {
        inFlightGauge.record(n)
        totals.withLock {
            $0.inFlight = n
            $0.peakInFlight = max($0.peakInFlight, n)
        }
    }

    /// - Parameter submitted: completions sent; those not recorded lost their lease.
    func recordCompleted(_ jobs: [CompletedJob], submitted: Int) {
        var s = 0, r = 0, f = 0, rel = 0, rec = 0, d = 0
        for job in jobs {
            switch job.outcome {
            case .succeeded: s += 1
            case .failed: f += 1
            case .released: rel += 1
            case .retried: r += 1
            case .delayed: d += 1
            case .reconciling, .held, .requeued, .cancelled: rec += 1
            }
            if let seconds = job.latencySeconds {
                latency.recordNanoseconds(Int64(seconds * 1e9))
            }
        }
        let lost = submitted - jobs.count
        if s > 0 { succeeded.increment(by: s) }
        if r > 0 { retried.increment(by: r) }
        if f > 0 { failed.increment(by: f) }
        if rel > 0 { released.increment(by: rel) }
        if lost > 0 { fencedOff.increment(by: lost) }
        if rec > 0 { toReconcile.increment(by: rec) }
        if d > 0 { delayed.increment(by: d) }
        recordFailures(jobs)
        totals.withLock {
            $0.succeeded += s; $0.retried += r; $0.failed += f; $0.released += rel; $0.fencedOff += lost; $0.toReconcile += rec
            $0.delayed += d
        }
        let samples = jobs.compactMap(\.latencySeconds)
        if !samples.isEmpty {
            latencies.withLock { $0.add(samples) }
            recent.withLock { $0.append(contentsOf: samples.prefix(max(0, Self.recentCap - $0.count))) }
        }
    }

    /// The enqueue-to-completion latencies recorded since the last call (the dashboard's
    /// per-second percentiles; the histogram above covers the whole run).
    public func takeRecentLatencies() -> [Double] {
        recent.withLock { samples in
            defer { samples.removeAll(keepingCapacity: true) }
            return samples
        }
    }

    func recordReconciled(_ jobs: [CompletedJob]) {
        func count(_ outcome: Completion.Outcome) -> Int { jobs.filter { $0.outcome == outcome }.count }
        let s = count(.succeeded), f = count(.failed), q = count(.requeued), c = count(.cancelled), h = count(.held)
        if s > 0 { reconciledSucceeded.increment(by: s) }
        if f > 0 { reconciledFailed.increment(by: f) }
        if q > 0 { reconciledRequeued.increment(by: q) }
        if c > 0 { reconciledCancelled.increment(by: c) }
        if h > 0 { held.increment(by: h) }
        recordFailures(jobs)
        totals.withLock {
            $0.reconciledSucceeded += s; $0.reconciledFailed += f; $0.reconciledRequeued += q; $0.reconciledCancelled += c; $0.held += h
        }
    }

    private func recordFailures(_ jobs: [CompletedJob]) {
        let reasons = jobs.compactMap { $0.outcome == .failed ? ($0.failureReason ?? .declined) : nil }
        guard !reasons.isEmpty else { return }
        var counts: [FailureReason: Int] = [:]
        for reason in reasons { counts[reason, default: 0] += 1 }
        for (reason, n) in counts { failedByReason[reason]?.increment(by: n) }
        totals.withLock { t in for (reason, n) in counts { t.failedBy[reason, default: 0] += n } }
    }

    func recordOrphans(_ n: Int) {
        guard n > 0 else { return }
        orphans.increment(by: n)
        totals.withLock { $0.orphansReleased += n }
    }

    func recordReaped(_ n: Int) {
        guard n > 0 else { return }
        reaped.increment(by: n)
        totals.withLock { $0.reaped += n }
    }

    func recordWakeup() {
        wakeupsHeard.increment()
        totals.withLock { $0.wakeups += 1 }
    }

    func setListening(_ listening: Bool) {
        listeningGauge.record(listening ? 1 : 0)
        totals.withLock { $0.listening = listening }
    }

    func recordDatabaseError() {
        databaseErrors.increment()
        totals.withLock { $0.databaseErrors += 1 }
    }
}
