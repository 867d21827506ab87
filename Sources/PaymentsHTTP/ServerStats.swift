import PaymentsCore

/// The body of `GET /v1/stats`.
public struct ServerStats: Sendable, Encodable, Equatable {
    public struct Worker: Sendable, Encodable, Equatable {
        public var claimed, succeeded, retried, failed, released, leaseLost, reaped, inFlight, peakInFlight, databaseErrors: Int
        public var toReconcile, reconciledSucceeded, reconciledFailed, reconciledRequeued, reconciledCancelled, held, delayed, orphansReleased: Int
        /// New payments announced to this process's claimer (LISTEN), and whether it listens now.
        public var wakeups: Int
        public var listening: Bool
        /// Failed payments by reason, every reason of the closed set present (0 when none).
        public var failedByReason: [String: Int]
        public var latencySecondsP50, latencySecondsP95, latencySecondsP99: Double
        /// Where the time goes, by stage (WorkerMetrics.Stage): p50, p95, p99 in seconds.
        public var stageSeconds: [String: StagePercentiles]
        public struct StagePercentiles: Sendable, Encodable, Equatable {
            public var p50, p95, p99: Double
        }
        enum CodingKeys: String, CodingKey {
            case claimed, succeeded, retried, failed, released, reaped
            case toReconcile = "to_reconcile", reconciledSucceeded = "reconciled_succeeded", reconciledFailed = "reconciled_failed"
            case orphansReleased = "orphans_released", reconciledRequeued = "reconciled_requeued"
            case reconciledCancelled = "reconciled_cancelled", held, delayed, failedByReason = "failed_by_reason"
            case leaseLost = "lease_lost", inFlight = "in_flight", peakInFlight = "peak_in_flight", databaseErrors = "database_errors"
            case latencySecondsP50 = "latency_seconds_p50", latencySecondsP95 = "latency_seconds_p95", latencySecondsP99 = "latency_seconds_p99"
            case stageSeconds = "stage_seconds", wakeups, listening
        }

        public init(_ totals: WorkerMetrics.Totals, latencyPercentiles p: [Double], stagePercentiles stages: [WorkerMetrics.Stage: [Double]] = [:]) {
            stageSeconds = Dictionary(uniqueKeysWithValues: WorkerMetrics.Stage.allCases.map { stage in
                let q = stages[stage] ?? []
                return (stage.rawValue, StagePercentiles(p50: q.count > 0 ? q[0] : 0, p95: q.count > 1 ? q[1] : 0, p99: q.count > 2 ? q[2] : 0))
            })
            claimed = totals.claimed
            succeeded = totals.succeeded
            retried = totals.retried
            failed = totals.failed
            released = totals.released
            leaseLost = totals.fencedOff
            reaped = totals.reaped
            inFlight = totals.inFlight
            peakInFlight = totals.peakInFlight
            databaseErrors = totals.databaseErrors
            toReconcile = totals.toReconcile
            reconciledSucceeded = totals.reconciledSucceeded
            reconciledFailed = totals.reconciledFailed
            reconciledRequeued = totals.reconciledRequeued
            reconciledCancelled = totals.reconciledCancelled
            held = totals.held
            delayed = totals.delayed
            failedByReason = Dictionary(uniqueKeysWithValues: FailureReason.allCases.map { ($0.rawValue, totals.failedBy[$0] ?? 0) })
            orphansReleased = totals.orphansReleased
            wakeups = totals.wakeups
            listening = totals.listening
            latencySecondsP50 = p.count > 0 ? p[0] : 0
            latencySecondsP95 = p.count > 1 ? p[1] : 0
            latencySecondsP99 = p.count > 2 ? p[2] : 0
        }
    }

    public struct Gateway: Sendable, Encodable, Equatable {
        public var calls, accepted, duplicates, declined, transientFailures: Int
        enum CodingKeys: String, CodingKey { case calls, accepted, duplicates, declined, transientFailures = "transient_failures" }

        public init(_ counts: GatewayCounts) {
            calls = counts.calls
            accepted = counts.accepted
            duplicates = counts.duplicates
            declined = counts.declined
            transientFailures = counts.transientFailures
        }
    }

    public var queue: QueueStats
    public var worker: Worker
    public var readsServedBy: [String: Int]
    public var gateway: Gateway?

    public init(queue: QueueStats, worker: Worker, readsServedBy: [String: Int], gateway: Gateway?) {
        self.queue = queue
        self.worker = worker
        self.readsServedBy = readsServedBy
        self.gateway = gateway
    }

    enum CodingKeys: String, CodingKey { case queue, worker, gateway, readsServedBy = "reads_served_by" }
}
