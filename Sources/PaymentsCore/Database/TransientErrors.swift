import PostgresNIO

/// Whether a database error is worth retrying: the connection went away (pooler or
/// server restart), the server is shutting down or starting (57P01/57P03), too many
/// connections, a serialization failure or deadlock (40001/40P01), or a pgbouncer-level
/// protocol error (08P01, e.g. query_wait_timeout). Constraint violations and syntax
/// errors are not: retrying cannot fix them.
public func isTransientDatabaseError(_ error: any Error) -> Bool {
    let error = rootCause(error)
    if error is TimeoutError { return true }
    guard let psql = error as? PSQLError else { return false }
    if let state = psql.serverInfo?[.sqlState] {
        return ["08", "40", "53", "57", "58"].contains(String(state.prefix(2)))
    }
    // No SQLSTATE: the connection failed, closed or was never made.
    return true
}
