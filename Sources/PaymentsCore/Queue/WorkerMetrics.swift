import Metrics
import Synchronization

/// The worker's swift-metrics instruments (exported by /metrics) and running totals (for
/// the periodic log line, /v1/stats and the demo).
public final class WorkerMetrics: Sendable {
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
        public var orphansReleased = 0
        public var inFlight = 0
        /// The most jobs held at once since start.
        public var peakInFlight = 0
        public var databaseErrors = 0

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
    let orphans = Counter(label: "payments_jobs_orphans_released_total")
    let databaseErrors = Counter(label: "payments_database_errors_total")
    let inFlightGauge = Gauge(label: "payments_jobs_in_flight")
    let claimBatch = Recorder(label: "payments_claim_batch_size", aggregate: true)
    let latency = Timer(label: "payments_job_latency_seconds", preferredDisplayUnit: .seconds)

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
        var s = 0, r = 0, f = 0, rel = 0, rec = 0
        for job in jobs {
            switch job.outcome {
            case .succeeded: s += 1
            case .failed: f += 1
            case .released: rel += 1
            case .retried: r += 1
            case .reconciling: rec += 1
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
        totals.withLock {
            $0.succeeded += s; $0.retried += r; $0.failed += f; $0.released += rel; $0.fencedOff += lost; $0.toReconcile += rec
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
        let s = jobs.filter { $0.outcome == .succeeded }.count, f = jobs.filter { $0.outcome == .failed }.count
        if s > 0 { reconciledSucceeded.increment(by: s) }
        if f > 0 { reconciledFailed.increment(by: f) }
        totals.withLock { $0.reconciledSucceeded += s; $0.reconciledFailed += f }
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

    func recordDatabaseError() {
        databaseErrors.increment()
        totals.withLock { $0.databaseErrors += 1 }
    }
}
