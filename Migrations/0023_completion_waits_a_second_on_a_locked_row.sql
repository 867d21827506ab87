-- A completion no longer waits out the statement timeout on a row another session holds.
--
-- payment_complete (migration 0022) set lock_timeout to the whole statement timeout (15 s
-- by default): a batch of up to 2,000 outcomes that met one row locked elsewhere (an
-- operator's open transaction) waited 15 s and failed with 55P03, and the worker then
-- wrote the batch row by row, each row still locked costing another 15 s; and the lock
-- wait's 55P03 could arrive after the client's own timer (the timeout and a second), so
-- the worker saw a timeout and retried the whole batch instead.
--
-- Now a call waits on a row lock at most a second (half the timeout when that is
-- shorter), and once for a lock held for good: the batch is written in a subtransaction; if a row lock held
-- elsewhere outlasts the wait, that subtransaction is undone, the call locks every row of
-- the batch that is free (SKIP LOCKED, no wait) and writes those, and returns each row
-- still locked elsewhere with the outcome 'locked' (nothing written for it; its worker
-- keeps its claim and writes it again later). The common case, no lock held elsewhere or
-- one released within the wait (the lease heartbeat's, an instant), is the statement of
-- 0022 with a subtransaction around it.
--
-- A binary from before this migration does not know 'locked': it fails to read such an
-- answer, the call's transaction has committed the other rows, and the locked row's lease
-- runs out and the reaper re-runs it (the gateway deduplicates). Migrate, then restart the
-- servers, as for every migration.
CREATE OR REPLACE FUNCTION payment_complete(p_ids bigint[], p_claims bigint[], p_outcomes text[], p_states text[],
                                 p_charge_ids text[], p_errors text[], p_delays float8[], p_refunds int[],
                                 p_failures text[], p_holds text[], p_finished bigint[], p_kept bigint[],
                                 p_fenced_state text, p_owner text, p_margin_s float8, p_timeout_ms int)
RETURNS TABLE (id bigint, outcome text, latency_s float8, failure text)
LANGUAGE plpgsql
SET enable_nestloop = off SET enable_seqscan = off SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    -- NULL: the whole batch; else the rows this call holds (the others are locked elsewhere).
    v_mine bigint[];
    r_ids bigint[];
    r_outcomes text[];
    r_latencies float8[];
    r_failures text[];
BEGIN
    -- At least a millisecond: 0 would mean no bound at all.
    PERFORM set_config('lock_timeout', greatest(1, least(p_timeout_ms / 2, 1000)) || 'ms', true);
    LOOP
        BEGIN
            -- Collected, not returned, inside the subtransaction: an undone attempt returns nothing.
            WITH input AS (
                SELECT * FROM unnest(p_ids, p_claims, p_outcomes, p_states, p_charge_ids, p_errors, p_delays, p_refunds,
                                     p_failures, p_holds)
                    AS t(id, claim, outcome, next_state, charge_id, error, delay_s, refund, failure, held)),
            finished AS (
                DELETE FROM payment_queue j USING input i
                WHERE j.id = ANY(p_finished) AND j.id = i.id AND i.next_state IN ('succeeded', 'failed', 'cancelled')
                  AND (v_mine IS NULL OR j.id = ANY(v_mine))
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
                  AND (v_mine IS NULL OR j.id = ANY(v_mine))
                  AND (j.state, j.lease_owner, j.claim_seq) IS NOT DISTINCT FROM (p_fenced_state, p_owner, i.claim)
                RETURNING j.id, CASE WHEN j.state = 'reconciling' AND i.next_state = 'queued'
                                     THEN 'reconciling' ELSE i.outcome END AS outcome),
            result (id, outcome, latency_s, failure) AS (
                SELECT id, CASE WHEN new_state = 'failed' AND new_failure = '' THEN 'cancelled' ELSE new_outcome END,
                       EXTRACT(EPOCH FROM now() - created_at)::float8, NULLIF(new_failure, '') FROM finished
                UNION ALL
                SELECT id, outcome, NULL::float8, NULL::text FROM kept)
            SELECT array_agg(r.id), array_agg(r.outcome), array_agg(r.latency_s), array_agg(r.failure)
            INTO r_ids, r_outcomes, r_latencies, r_failures
            FROM result r;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            -- Every queue row written on the second pass is held by this call; a wait there
            -- (the history's per-backend totals row, a moment) ends the call as 55P03, retried.
            IF v_mine IS NOT NULL THEN RAISE; END IF;
            v_mine := ARRAY(SELECT q.id FROM payment_queue q WHERE q.id = ANY(p_ids) FOR UPDATE SKIP LOCKED);
        END;
    END LOOP;
    RETURN QUERY SELECT * FROM unnest(r_ids, r_outcomes, r_latencies, r_failures);
    IF v_mine IS NOT NULL THEN
        -- Still in the queue and not held by this call: locked elsewhere. A row gone from
        -- the queue was finished by someone else: fenced off, absent like any other.
        RETURN QUERY
        SELECT l.id, 'locked'::text, NULL::float8, NULL::text FROM unnest(p_ids) AS l(id)
        WHERE l.id <> ALL(v_mine)
          -- By primary key through the batch (JobStore.PlannerSettings.batchJoinByPrimaryKey).
          AND EXISTS (SELECT 1 FROM payment_queue q WHERE q.id = ANY(p_ids) AND q.id = l.id);
    END IF;
    PERFORM payment_call_in_time('payment_complete', p_timeout_ms);
END
$$;
