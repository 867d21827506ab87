import PostgresNIO

/// Where a payment job is in its life. `payment_jobs.state` holds the raw value; Swift
/// code binds and decodes this type directly, never the strings.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    /// Terminal states never change again (the database's trigger enforces it too).
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled: true
        case .queued, .running: false
        }
    }

    public static let terminal: [JobState] = allCases.filter(\.isTerminal)
    public static let open: [JobState] = allCases.filter { !$0.isTerminal }
}

extension JobState: PostgresTextEnum {}
