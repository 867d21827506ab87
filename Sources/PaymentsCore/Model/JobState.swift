import PostgresNIO

/// Where a payment job is in its life. `payment_jobs.state` holds the raw value; Swift
/// code binds and decodes this type directly, never the strings.
public enum JobState: String, Sendable, Codable, CaseIterable {
    /// `reconciling`: the charge may have happened and its outcome is not known yet; the
    /// reconciler asks the gateway by key, then posts or fails the job. Never `failed` on a guess.
    case queued, running, reconciling, succeeded, failed, cancelled

    /// Terminal states never change again (the database's trigger enforces it too).
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled: true
        case .queued, .running, .reconciling: false
        }
    }

    public static let terminal: [JobState] = allCases.filter(\.isTerminal)
    public static let open: [JobState] = allCases.filter { !$0.isTerminal }
}

extension JobState: PostgresTextEnum {}
