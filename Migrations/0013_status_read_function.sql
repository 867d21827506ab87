-- The status read (`GET /v1/payments/{id}`) as a function whose plan PostgreSQL keeps.
--
-- As an inline statement, PostgreSQL parsed and planned it (a three-way union over the
-- queue, the partitioned history and the archive, plus the partitioned ledger) on every
-- call: through transaction pooling there are no named prepared statements. PL/pgSQL
-- caches the plans of its statements per server connection, and server connections
-- outlive transactions, so the cache survives transaction pooling; the bound id still
-- prunes the history's and the ledger's partitions (at run time with the generic plan).
-- Measured before (pgbench through pgbouncer-read, 32 clients, PITFALLS.md): the inline
-- statement 2,200-2,600 TPS, the same wrapped in PL/pgSQL 5,300-5,700.
--
-- One row always: the answering node's identity, lag and freshness (evaluated in the same
-- statement, so they describe the node that answered), then the payment's columns (NULL
-- when there is no such payment), then its postings as a JSON array (NULL when none).
-- The read path's callers (ReadRouter) decode the first four columns of every routed read.
CREATE FUNCTION payment_status(payment bigint, token text)
RETURNS TABLE (in_recovery boolean, node text, lag_seconds float8, fresh boolean,
               id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text,
               priority smallint, max_attempts integer, state text, attempt integer, last_error text, charge_id text,
               created_at text, updated_at text, finished_at text, give_up_at text, failure_reason text,
               cancel_requested_at text, held_reason text, postings text)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT pg_is_in_recovery(),
           COALESCE(NULLIF(current_setting('payments.node', true), ''), current_setting('cluster_name'))::text,
           CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
                WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0) END,
           CASE WHEN token IS NULL OR NOT pg_is_in_recovery() THEN true ELSE pg_last_wal_replay_lsn() >= token::pg_lsn END,
           j.id, j.idempotency_key::text, j.amount_minor, j.currency::text, j.debtor, j.creditor, j.priority, j.max_attempts,
           j.state, j.attempt, j.last_error, j.charge_id,
           to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           to_char(j.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           to_char(j.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           to_char(j.give_up_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           j.failure_reason,
           to_char(j.cancel_requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           j.held_reason,
           (SELECT json_agg(json_build_object('side', l.side, 'account', l.account, 'amount_minor', l.amount_minor,
                    'currency', l.currency, 'posted_at', to_char(l.posted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
                    ORDER BY l.side DESC)::text
            FROM ledger_entries l WHERE l.job_id = payment)
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT q.id, q.idempotency_key, q.amount_minor, q.currency, q.debtor, q.creditor, q.priority, q.max_attempts,
               q.state, q.attempt, q.last_error, q.charge_id, q.created_at, q.updated_at, q.finished_at,
               q.give_up_at, q.failure_reason, q.cancel_requested_at, q.held_reason
        FROM payment_queue q WHERE q.id = payment
        UNION ALL
        SELECT h.id, h.idempotency_key, h.amount_minor, h.currency, h.debtor, h.creditor, h.priority, h.max_attempts,
               h.state, h.attempt, h.last_error, h.charge_id, h.created_at, h.updated_at, h.finished_at,
               h.give_up_at, h.failure_reason, h.cancel_requested_at, h.held_reason
        FROM payment_history h WHERE h.id = payment
        UNION ALL
        SELECT a.id, a.idempotency_key, a.amount_minor, a.currency, a.debtor, a.creditor, a.priority, a.max_attempts,
               a.state, a.attempt, a.last_error, a.charge_id, a.created_at, a.updated_at, a.finished_at,
               a.give_up_at, a.failure_reason, a.cancel_requested_at, a.held_reason
        FROM payment_jobs_archive a WHERE a.id = payment
        LIMIT 1) j ON true;
END $$;
