import PostgresNIO

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

/// PostgresNIO wraps whatever failed inside a transaction; this returns what failed.
public func rootCause(_ error: any Error) -> any Error {
    if let error = error as? PostgresTransactionError {
        if let inner = error.closureError ?? error.commitError ?? error.beginError { return rootCause(inner) }
    }
    return error
}
