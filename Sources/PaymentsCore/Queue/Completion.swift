import PostgresNIO

/// What a worker (or the reconciler) decided about one claimed job.
public struct Completion: Sendable, Equatable {
    public enum Resolution: Sendable, Equatable {
        /// The gateway's record, matched to the payment (key, amount, currency).
        case succeeded(chargeID: String)
        /// A transient failure of ours or the gateway's: runs again after `after`.
        case retry(error: String, after: Duration)
        /// Not an attempt: another request for the key was still being processed, or the
        /// gateway was asked nothing. Runs again after `after`, the attempt refunded.
        case delay(error: String, after: Duration)
        /// For the payer's reason only (a decline, or the budget ran out with the gateway
        /// proving no charge).
        case failed(reason: FailureReason, error: String)
        /// Back to the queue at once, the attempt not counted (shutdown before an answer).
        case release(reason: String)
        /// The charge may have happened and the worker will not send again: the reconciler
        /// settles it with the gateway, no sooner than `after` and never before its last
        /// request's deadline (`charge_deadline_at`) plus the margin.
        case reconcile(error: String, after: Duration = .zero)
        /// Reconciler: the gateway holds a charge under the key that is not this payment's;
        /// left `reconciling` for an operator, not asked about again.
        case hold(reason: HeldReason, error: String)
        /// Reconciler: the gateway proved no charge and the budget lasts: queued again now,
        /// same key, its lease losses forgotten.
        case requeue(error: String)
        /// Reconciler: a cancel was asked and the gateway proved no charge after every deadline.
        case cancelled(reason: String)
    }

    /// The kind of a resolution, as the completion statement records and returns it.
    public enum Outcome: String, Sendable, Equatable, CaseIterable, PostgresTextEnum {
        case succeeded, retried, delayed, failed, released, reconciling, held, requeued, cancelled
    }

    public var jobID: Int64
    /// The claim this outcome belongs to (`claim_seq`): the fence of its write.
    public var claim: Int64
    public var resolution: Resolution
    /// When the answer it records was known (the completion stage's wait starts there).
    public var answeredAt: ContinuousClock.Instant

    public init(jobID: Int64, claim: Int64, resolution: Resolution, answeredAt: ContinuousClock.Instant = .now) {
        self.jobID = jobID
        self.claim = claim
        self.resolution = resolution
        self.answeredAt = answeredAt
    }

    /// The claim it records, as the worker holds it.
    var key: HeldJobs.Key { HeldJobs.Key(id: jobID, claim: claim) }
}

extension Completion.Resolution {
    public var outcome: Completion.Outcome {
        switch self {
        case .succeeded: .succeeded
        case .retry: .retried
        case .delay: .delayed
        case .failed: .failed
        case .release: .released
        case .reconcile: .reconciling
        case .hold: .held
        case .requeue: .requeued
        case .cancelled: .cancelled
        }
    }

    /// The state the job moves to (before a pending cancel turns a queued one into reconciling).
    public var nextState: JobState {
        switch self {
        case .succeeded: .succeeded
        case .failed: .failed
        case .cancelled: .cancelled
        case .retry, .delay, .release, .requeue: .queued
        case .reconcile, .hold: .reconciling
        }
    }

    public var chargeID: String? {
        if case let .succeeded(chargeID) = self { return chargeID }
        return nil
    }

    public var failureReason: FailureReason? {
        if case let .failed(reason, _) = self { return reason }
        return nil
    }

    public var heldReason: HeldReason? {
        if case let .hold(reason, _) = self { return reason }
        return nil
    }

    /// Kept as the job's last_error (nil keeps the previous one).
    public var error: String? {
        switch self {
        case .succeeded: nil
        case let .retry(error, _), let .delay(error, _), let .failed(_, error), let .reconcile(error, _),
             let .hold(_, error), let .requeue(error):
            error
        case let .release(reason), let .cancelled(reason): reason
        }
    }

    /// From now until the job may run again, or be reconciled.
    public var delay: Duration {
        switch self {
        case let .retry(_, after), let .delay(_, after), let .reconcile(_, after): after
        default: .zero
        }
    }

    /// Released and delayed attempts do not count: the gateway decided nothing.
    public var refundsAttempt: Bool {
        switch self {
        case .release, .delay: true
        default: false
        }
    }
}

/// What one completion call did (`payment_complete`, migration 0023): the outcomes it
/// recorded, and the jobs whose queue row another session held locked past the call's
/// wait of a second, for which it wrote nothing (their worker keeps the claim and writes
/// them again). A completion fenced off (its lease lost) is in neither.
public struct CompletionWrite: Sendable, Equatable {
    public var recorded: [CompletedJob]
    public var locked: [Int64]

    public init(recorded: [CompletedJob] = [], locked: [Int64] = []) {
        self.recorded = recorded
        self.locked = locked
    }
}

/// One completed job as the database recorded it.
public struct CompletedJob: Sendable, Equatable {
    public var id: Int64
    public var outcome: Completion.Outcome
    /// Enqueue to completion, for terminal jobs.
    public var latencySeconds: Double?
    /// Why it failed, for failed jobs.
    public var failureReason: FailureReason?

    public init(id: Int64, outcome: Completion.Outcome, latencySeconds: Double? = nil, failureReason: FailureReason? = nil) {
        self.id = id
        self.outcome = outcome
        self.latencySeconds = latencySeconds
        self.failureReason = failureReason
    }
}
