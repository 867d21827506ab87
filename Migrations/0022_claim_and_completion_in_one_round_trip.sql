-- The claim and the completion, each one statement in one round trip, planned once per
-- server connection.
--
-- Each used to be a transaction of four round trips through pgbouncer-write (BEGIN, the
-- statement timeout and planner settings, the statement, COMMIT), and PostgreSQL planned
-- the statement on every call: through transaction pooling a client cannot keep a
-- prepared statement, but a PL/pgSQL function keeps its plans per server connection. At a
-- tenth of the maximum drain the completion spent 0.72 ms planning for 1.06 ms of
-- execution, and claim and commit each took ~6.5 ms at p50 for ~1 ms of work; pgbench on
-- an empty queue: 2,693-2,813 claims/s as the transaction, 9,752-10,410 as this function
-- (4 clients, 2026-12-06).
--
-- Called alone (autocommit: the call is its transaction). The planner settings are the
-- functions' SET clauses (restored when the call returns, so no session state is left on
-- the pooled connection): the claim reads the claimable index in its order, stops at its
-- LIMIT and joins what it picked back by primary key, row by row; the completion finds
-- queue rows by primary key and hashes them against the batch (see
-- JobStore.PlannerSettings for why each). force_generic_plan: the point is to plan once,
-- and the settings keep the generic plan (which cannot see the LIMIT or the batch's size)
-- on the same shape as a custom one.
--
-- The timeout. statement_timeout cannot be set from inside a call (the timer is armed
-- when the statement arrives), so each function bounds itself: each of its lock waits by
-- lock_timeout (set for the call's transaction only), and before returning it checks the
-- time since the statement arrived: past p_timeout_ms it raises query_canceled, as the
-- statement timeout did, and nothing it did commits. Unlike the statement timeout, it
-- does not stop a call that is still working (the role's 60 s statement_timeout,
-- migration 0005, does). The client waits the same timeout and a second from before it
-- sent the call, so a call whose client gave up commits nothing, except when its answer
-- is lost on the way back (the connection drops): then it commits unseen, as a COMMIT
-- whose answer was lost did before. A claim so committed is released by its owner's next
-- sweep (never received, so never charged); a completion so committed is found already
-- recorded when retried (fenced off, reported as a lost lease).

-- Raises query_canceled, as the statement timeout does, once the statement has run longer
-- than p_timeout_ms: the last step of each function below.
CREATE FUNCTION payment_call_in_time(p_function text, p_timeout_ms int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF clock_timestamp() > statement_timestamp() + p_timeout_ms * interval '1 millisecond' THEN
        RAISE EXCEPTION 'canceling statement due to statement timeout (%, % ms)', p_function, p_timeout_ms
            USING ERRCODE = 'query_canceled';
    END IF;
END
$$;

CREATE FUNCTION payment_claim(p_limit int, p_owner text, p_lease_s float8, p_timeout_ms int)
RETURNS TABLE (id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text,
               attempt int, max_attempts int, give_up_at timestamptz, cancel_requested boolean, claim_seq bigint,
               waited_s float8)
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('lock_timeout', p_timeout_ms || 'ms', true);
    -- The locking subquery sits in a CTE so the planner cannot update more rows than the
    -- LIMIT; SKIP LOCKED lets workers claim side by side. The state predicate matches the
    -- partial index of claimable rows.
    RETURN QUERY
    WITH picked AS (
        SELECT q.id FROM payment_queue q
        WHERE q.state = 'queued' AND q.run_at <= now()
        ORDER BY q.priority, q.run_at, q.id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
    UPDATE payment_queue j
    SET state = 'running', attempt = j.attempt + 1, lease_owner = p_owner, claim_seq = j.claim_seq + 1,
        lease_expires_at = now() + make_interval(secs => p_lease_s), claimed_at = now(), updated_at = now(),
        -- No request of this claim can have a later deadline (the worker's is at most the lease).
        charge_deadline_at = greatest(j.charge_deadline_at, now() + make_interval(secs => p_lease_s))
    FROM picked WHERE j.id = picked.id
    RETURNING j.id, j.idempotency_key, j.amount_minor, j.currency::text, j.debtor, j.creditor, j.attempt, j.max_attempts,
              COALESCE(j.give_up_at, j.created_at + interval '1 hour'), j.cancel_requested_at IS NOT NULL, j.claim_seq,
              greatest(EXTRACT(EPOCH FROM now() - j.run_at), 0)::float8;
    PERFORM payment_call_in_time('payment_claim', p_timeout_ms);
END
$$;

-- Records a batch of outcomes, fenced: a row changes only if it is still in p_fenced_state
-- under this owner (NULL for the reconciler) and the completion's claim, so a worker that
-- lost its lease changes nothing. A final outcome moves the job out of the queue into
-- payment_history (the queue keeps only open jobs); a succeeded job gets its debit and
-- credit in the same statement, and the ledger's primary key (job, side) refuses a second
-- posting. A retry or a reconciliation stays in the queue. Returns each recorded job with
-- its outcome; a fenced-off completion is absent.
--
-- A cancel asked while the job ran (cancel_requested_at, read on the row the statement
-- locks, so a cancel committed before it is seen) turns a job that would be queued again
-- into a `reconciling` one, settled once no request of it can land (charge_deadline_at
-- plus the margin): a payment whose request may have left is cancelled only on the
-- gateway's proof. And a reconciler's "budget exhausted" for a payment whose cancel was
-- asked meanwhile ends it `cancelled`, as asked.
--
-- Arrays cannot carry NULL elements from the client: '' stands for none. p_finished and
-- p_kept split p_ids by whether the next state is terminal; every queue row is found by
-- primary key through them.
CREATE FUNCTION payment_complete(p_ids bigint[], p_claims bigint[], p_outcomes text[], p_states text[],
                                 p_charge_ids text[], p_errors text[], p_delays float8[], p_refunds int[],
                                 p_failures text[], p_holds text[], p_finished bigint[], p_kept bigint[],
                                 p_fenced_state text, p_owner text, p_margin_s float8, p_timeout_ms int)
RETURNS TABLE (id bigint, outcome text, latency_s float8, failure text)
LANGUAGE plpgsql
SET enable_nestloop = off SET enable_seqscan = off SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('lock_timeout', p_timeout_ms || 'ms', true);
    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(p_ids, p_claims, p_outcomes, p_states, p_charge_ids, p_errors, p_delays, p_refunds,
                             p_failures, p_holds)
            AS t(id, claim, outcome, next_state, charge_id, error, delay_s, refund, failure, held)),
    finished AS (
        DELETE FROM payment_queue j USING input i
        WHERE j.id = ANY(p_finished) AND j.id = i.id AND i.next_state IN ('succeeded', 'failed', 'cancelled')
          AND (j.state, j.lease_owner, j.claim_seq) IS NOT DISTINCT FROM (p_fenced_state, p_owner, i.claim)
        RETURNING j.*, i.outcome AS new_outcome, i.next_state AS new_state, i.charge_id AS new_charge_id,
                  i.error AS new_error, i.refund AS new_refund,
                  CASE WHEN i.failure = 'budget_exhausted' AND j.cancel_requested_at IS NOT NULL
                       THEN '' ELSE i.failure END AS new_failure),
    moved AS (
        INSERT INTO payment_history (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
                                     state, attempt, max_attempts, priority, run_at, lease_owner, lease_expires_at,
                                     last_error, charge_id, created_at, claimed_at, updated_at, finished_at, lease_losses,
                                     give_up_at, failure_reason, cancel_requested_at, held_reason, claim_seq, charge_deadline_at)
        SELECT id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
               CASE WHEN new_state = 'failed' AND new_failure = '' THEN 'cancelled' ELSE new_state END,
               attempt - new_refund, max_attempts, priority, run_at, NULL, NULL,
               CASE WHEN new_outcome = 'succeeded' THEN last_error
                    WHEN new_state = 'failed' AND new_failure = '' THEN 'cancelled as asked: the gateway holds no charge for this payment after every deadline'
                    ELSE new_error END,
               CASE WHEN new_outcome = 'succeeded' THEN new_charge_id END,
               created_at, claimed_at, now(), now(), lease_losses,
               give_up_at, NULLIF(new_failure, ''), cancel_requested_at, NULL, claim_seq, charge_deadline_at
        FROM finished
        RETURNING 1),
    posted AS (
        INSERT INTO ledger_entries (job_id, side, account, amount_minor, currency, attempt)
        SELECT f.id, s.side,
               CASE s.side WHEN 'debit' THEN f.debtor ELSE f.creditor END,
               CASE s.side WHEN 'debit' THEN -f.amount_minor ELSE f.amount_minor END,
               f.currency, f.attempt
        FROM finished f CROSS JOIN (VALUES ('debit'), ('credit')) AS s(side)
        WHERE f.new_state = 'succeeded'
        RETURNING 1),
    kept AS (
        UPDATE payment_queue j SET
            state = CASE WHEN j.cancel_requested_at IS NOT NULL AND i.next_state = 'queued'
                         THEN 'reconciling' ELSE i.next_state END,
            run_at = CASE WHEN i.held <> '' THEN 'infinity'::timestamptz
                          WHEN j.cancel_requested_at IS NOT NULL AND i.next_state = 'queued'
                          THEN greatest(now(), j.charge_deadline_at) + make_interval(secs => p_margin_s)
                          ELSE now() + make_interval(secs => i.delay_s) END,
            attempt = j.attempt - i.refund,
            last_error = i.error,
            held_reason = NULLIF(i.held, ''),
            lease_losses = CASE WHEN i.outcome = 'requeued' THEN 0 ELSE j.lease_losses END,
            lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
        FROM input i
        WHERE j.id = ANY(p_kept) AND j.id = i.id AND NOT i.next_state IN ('succeeded', 'failed', 'cancelled')
          AND (j.state, j.lease_owner, j.claim_seq) IS NOT DISTINCT FROM (p_fenced_state, p_owner, i.claim)
        RETURNING j.id, CASE WHEN j.state = 'reconciling' AND i.next_state = 'queued'
                             THEN 'reconciling' ELSE i.outcome END AS outcome)
    SELECT id, CASE WHEN new_state = 'failed' AND new_failure = '' THEN 'cancelled' ELSE new_outcome END,
           EXTRACT(EPOCH FROM now() - created_at)::float8, NULLIF(new_failure, '') FROM finished
    UNION ALL
    SELECT id, outcome, NULL::float8, NULL::text FROM kept;
    PERFORM payment_call_in_time('payment_complete', p_timeout_ms);
END
$$;
