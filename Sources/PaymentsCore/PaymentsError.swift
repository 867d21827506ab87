import PostgresNIO

/// Every failure a person may have to act on, with a message that says what to do.
public enum PaymentsError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidDSN(String, reason: String)
    case invalidOption(String)
    case unreachable(role: String, endpoint: String, reason: String)
    case migrationFailed(file: String, reason: String)
    case migrationModified(file: String)
    case migrationsMissing(String)
    case inputUnreadable(path: String, reason: String)
    case invalidInput(lines: [LineError], total: Int)
    case database(String)
    case shutdownTimedOut(Int)

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
        case let .database(message):
            return "database error: \(message)"
        case let .shutdownTimedOut(count):
            return "shutdown timed out with \(count) jobs still in flight; their leases will expire and they will be retried"
        }
    }
}

public struct LineError: Sendable, Equatable {
    public var line: Int
    public var reason: String
    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }
}

/// A one-line, human description of any error, including PostgresNIO's, whose default
/// description deliberately hides the server's message.
public func describe(_ error: any Error) -> String {
    let error = rootCause(error)
    if let error = error as? PaymentsError { return error.description }
    if let error = error as? PSQLError {
        if let info = error.serverInfo {
            var text = info[.message] ?? "server error"
            if let state = info[.sqlState] { text += " (SQLSTATE \(state))" }
            if let detail = info[.detail] { text += "; \(detail)" }
            return text
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }
    return "\(error)"
}

/// The SQLSTATE of a server error, if the error came from the server.
public func sqlState(of error: any Error) -> String? {
    (rootCause(error) as? PSQLError)?.serverInfo?[.sqlState]
}

/// PostgresNIO wraps whatever failed inside a transaction; this returns what failed.
public func rootCause(_ error: any Error) -> any Error {
    if let error = error as? PostgresTransactionError {
        if let inner = error.closureError ?? error.commitError ?? error.beginError { return rootCause(inner) }
    }
    return error
}
