import PostgresNIO

/// Whether a database error is worth retrying: the connection went away (pooler or
/// server restart, a failover), the server is shutting down or starting (57P01/57P03),
/// too many connections, a serialization failure or deadlock (40001/40P01), a
/// pgbouncer-level protocol error (08P01, e.g. query_wait_timeout or server_login_retry),
/// or a write that reached a node demoted a moment ago (see `isTransientSQLState`).
/// Constraint violations and syntax errors are not: retrying cannot fix them.
public func isTransientDatabaseError(_ error: any Error) -> Bool {
    let error = rootCause(error)
    if error is TimeoutError { return true }
    guard let psql = error as? PSQLError else { return false }
    if let state = psql.serverInfo?[.sqlState] { return isTransientSQLState(state) }
    // No SQLSTATE: the connection failed, closed or was never made.
    return true
}

/// The SQLSTATEs a retry can get past. 25006 (read_only_sql_transaction) is the one of
/// its class that is: in HA mode, for the moment between a switchover's demotion and
/// HAProxy's next check of the old leader (200 ms), a new server connection can still
/// reach the node just demoted, where every write fails so; nothing was written, so
/// running the transaction again, on a connection to the new leader, is safe. The rest
/// of class 25 (a transaction in the wrong state) is a defect, not a moment. 55P03
/// (lock_not_available) is a lock held too long right now: the claim and completion
/// functions bound their lock waits so (migration 0022), where the statement timeout's
/// 57014 used to end them; the completion answers a queue row locked elsewhere as
/// `locked` instead (0023), and raises it only for a wait on anything else.
public func isTransientSQLState(_ state: String) -> Bool {
    state == "25006" || state == "55P03" || ["08", "40", "53", "57", "58"].contains(String(state.prefix(2)))
}
