import PostgresNIO

/// What a worker decided about one claimed job.
public struct Completion: Sendable, Equatable {
    public enum Resolution: Sendable, Equatable {
        case succeeded(chargeID: String)
        case retry(error: String, after: Duration)
        case failed(error: String)
        /// Back to the queue at once, the attempt not counted (shutdown before an answer).
        case release(reason: String)
        /// The charge may have happened and no attempt is left: the reconciler settles it
        /// with the gateway once `after` has passed (no charge can land after that).
        case reconcile(error: String, after: Duration)
    }

    /// The kind of a resolution, as the completion statement records and returns it.
    public enum Outcome: String, Sendable, Equatable, CaseIterable, PostgresTextEnum {
        case succeeded, retried, failed, released, reconciling
    }

    public var jobID: Int64
    public var attempt: Int32
    public var resolution: Resolution

    public init(jobID: Int64, attempt: Int32, resolution: Resolution) {
        self.jobID = jobID
        self.attempt = attempt
        self.resolution = resolution
    }
}

extension Completion.Resolution {
    public var outcome: Completion.Outcome {
        switch self {
        case .succeeded: .succeeded
        case .retry: .retried
        case .failed: .failed
        case .release: .released
        case .reconcile: .reconciling
        }
    }

    /// The state the job moves to.
    public var nextState: JobState {
        switch self {
        case .succeeded: .succeeded
        case .failed: .failed
        case .retry, .release: .queued
        case .reconcile: .reconciling
        }
    }

    public var chargeID: String? {
        if case let .succeeded(chargeID) = self { return chargeID }
        return nil
    }

    /// Kept as the job's last_error (nil keeps the previous one).
    public var error: String? {
        switch self {
        case .succeeded: nil
        case let .retry(error, _), let .failed(error), let .reconcile(error, _): error
        case let .release(reason): reason
        }
    }

    /// From now until the job may run again, or be reconciled.
    public var delay: Duration {
        switch self {
        case let .retry(_, after), let .reconcile(_, after): after
        default: .zero
        }
    }

    /// A released attempt does not count: the gateway never answered it.
    public var refundsAttempt: Bool {
        if case .release = self { return true }
        return false
    }
}

/// One completed job as the database recorded it.
public struct CompletedJob: Sendable, Equatable {
    public var id: Int64
    public var outcome: Completion.Outcome
    /// Enqueue to completion, for terminal jobs.
    public var latencySeconds: Double?
}
