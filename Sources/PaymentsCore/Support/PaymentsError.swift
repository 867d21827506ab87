/// Every failure a person may have to act on, with a message that says what to do.
public enum PaymentsError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A connection string that cannot be parsed (a usage error: exit 64).
    case invalidDSN(String, reason: String)
    /// A flag or setting out of range (a usage error: exit 64).
    case invalidOption(String)
    case unreachable(role: String, endpoint: String, reason: String)
    case migrationFailed(file: String, reason: String)
    case migrationModified(file: String)
    case migrationsMissing(String)
    case inputUnreadable(path: String, reason: String)
    case invalidInput(lines: [LineError], total: Int)
    case emptyInput
    case database(String)
    /// The HTTP port is taken: `serve` ends at once rather than run without its API.
    case portInUse(host: String, port: Int)

    /// Whether the person got the command line wrong (sysexits' EX_USAGE), as opposed to
    /// the command failing at run time.
    public var isUsageError: Bool {
        switch self {
        case .invalidDSN, .invalidOption: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case let .invalidDSN(dsn, reason):
            return "invalid DSN '\(DatabaseURL.redact(dsn))': \(reason). Expected user:password@host:port/database?sslmode=disable or postgres://user:password@host:port/database"
        case let .invalidOption(message):
            return message
        case let .unreachable(role, endpoint, reason):
            return "cannot reach \(role) at \(endpoint): \(reason). Is the topology up? (scripts/topology status)"
        case let .migrationFailed(file, reason):
            return "migration \(file) failed and was rolled back: \(reason)"
        case let .migrationModified(file):
            return "migration \(file) was changed after it was applied; add a new migration file instead of editing an applied one"
        case let .migrationsMissing(detail):
            return "no migration files found: \(detail)"
        case let .inputUnreadable(path, reason):
            return "cannot read input \(path): \(reason)"
        case let .invalidInput(lines, total):
            let shown = lines.prefix(20).map { "  line \($0.line): \($0.reason)" }.joined(separator: "\n")
            let more = lines.count > 20 ? "\n  … and \(lines.count - 20) more bad lines" : ""
            return "\(lines.count) of \(total) input lines are invalid; nothing was inserted:\n\(shown)\(more)"
        case .emptyInput:
            return "the input has no payments"
        case let .database(message):
            return "database error: \(message)"
        case let .portInUse(host, port):
            return "port \(port) is in use on \(host): another process listens there; stop it or choose another --port"
        }
    }
}

/// One bad line of a JSON Lines input, 1-based.
public struct LineError: Sendable, Equatable {
    public var line: Int
    public var reason: String
    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }
}
