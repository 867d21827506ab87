-- The batch of status reads as one set-based query.
--
-- payment_status_batch (0015) called payment_status_in_snapshot once per payment, through
-- a LATERAL join: a PL/pgSQL call, its own executor start and a GUC save and restore
-- (0019) for every read in the batch. Here the node, the queue, the history, the archive
-- and the postings are joined to the batch's ids in one query. What each read answers is
-- unchanged: the node that answered (payment_read_node, in the statement), the freshness
-- of each token compared with the replay position before the query's snapshot, a row of
-- NULLs for a payment that is nowhere, one row per element in its order.
--
-- pgbench through pgbouncer-read, batches of 16 recent finished payments, 8 clients,
-- 2026-12-06: 2,175 statements/s (0015's) against 3,696 (this one).
CREATE OR REPLACE FUNCTION payment_status_batch(payments bigint[], tokens text[])
RETURNS TABLE (in_recovery boolean, node text, lag_seconds float8, fresh boolean,
               id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text,
               priority smallint, max_attempts integer, state text, attempt integer, last_error text, charge_id text,
               created_at text, updated_at text, finished_at text, give_up_at text, failure_reason text,
               cancel_requested_at text, held_reason text, postings text, item integer)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    on_replica boolean := pg_is_in_recovery();
    replayed pg_lsn := CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() END;
    caught_up boolean[];
BEGIN
    IF coalesce(cardinality(payments), 0) <> coalesce(cardinality(tokens), 0) THEN
        RAISE EXCEPTION 'payment_status_batch: % payments but % tokens', cardinality(payments), cardinality(tokens);
    END IF;
    -- Every token against one replay position read before the snapshot of the query below
    -- (a VOLATILE function's query takes a new snapshot when it runs).
    SELECT array_agg(CASE WHEN coalesce(t, '') = '' OR NOT on_replica THEN true ELSE replayed >= t::pg_lsn END ORDER BY n)
      INTO caught_up FROM unnest(tokens) WITH ORDINALITY AS u(t, n);
    RETURN QUERY
    SELECT r.in_recovery, r.node, r.lag_seconds, caught_up[u.n],
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
            FROM ledger_entries l WHERE l.job_id = u.p),
           u.n::integer
    FROM payment_read_node() r
    CROSS JOIN unnest(payments) WITH ORDINALITY AS u(p, n)
    LEFT JOIN LATERAL (
        SELECT q.id, q.idempotency_key, q.amount_minor, q.currency, q.debtor, q.creditor, q.priority, q.max_attempts,
               q.state, q.attempt, q.last_error, q.charge_id, q.created_at, q.updated_at, q.finished_at,
               q.give_up_at, q.failure_reason, q.cancel_requested_at, q.held_reason
        FROM payment_queue q WHERE q.id = u.p
        UNION ALL
        SELECT h.id, h.idempotency_key, h.amount_minor, h.currency, h.debtor, h.creditor, h.priority, h.max_attempts,
               h.state, h.attempt, h.last_error, h.charge_id, h.created_at, h.updated_at, h.finished_at,
               h.give_up_at, h.failure_reason, h.cancel_requested_at, h.held_reason
        FROM payment_history h WHERE h.id = u.p
        UNION ALL
        SELECT a.id, a.idempotency_key, a.amount_minor, a.currency, a.debtor, a.creditor, a.priority, a.max_attempts,
               a.state, a.attempt, a.last_error, a.charge_id, a.created_at, a.updated_at, a.finished_at,
               a.give_up_at, a.failure_reason, a.cancel_requested_at, a.held_reason
        FROM payment_jobs_archive a WHERE a.id = u.p
        LIMIT 1) j ON true
    ORDER BY u.n;
END $$;
