-- The answering node, as one function every routed read selects first.
--
-- Each routed statement (ReadStatements: the queue's counts, the held payments, the lease
-- owners, the node's clock) starts with the node that answered it: a replica or not, its
-- name, its replay lag in seconds (0 when it has replayed all it received), and whether it
-- is fresh (always true here: these reads carry no token; the status reads compare theirs
-- in payment_status_batch). Evaluated in the statement, so it describes the node that
-- answered, not one asked before. It was a SQL fragment pasted into each statement.
CREATE FUNCTION payment_read_node()
RETURNS TABLE (in_recovery boolean, node text, lag_seconds float8, fresh boolean)
LANGUAGE sql STABLE AS $$
    SELECT pg_is_in_recovery(),
           COALESCE(NULLIF(current_setting('payments.node', true), ''), current_setting('cluster_name')),
           CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
                WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0) END,
           true
$$;
