-- The claim reads the rows it picked by primary key, whatever the statistics said when
-- its plan was made.
--
-- payment_claim (migration 0022) runs a generic plan, made at a server connection's first
-- claim and kept for the connection's life. It joined the rows it picked back to the
-- queue (UPDATE ... FROM picked WHERE j.id = picked.id). Planned while the queue has no
-- pages at all (a fresh database: the serve polls the empty queue before the first
-- payments arrive), the planner counts both sides as one row each and, of two plans it
-- prices alike, may take the one that reads the whole primary key and compares each row
-- with each pick (a Join Filter). The connection then keeps that plan: each claim of 500
-- read every row of the queue 500 times (the demo's first run on a fresh topology,
-- 2026-12-07: 3,971 to 7,786 queue rows a claim, 560 ms a claim, 1,346 payments/s where
-- later runs did 5,000-7,500).
--
-- Now the update reads its rows by `id = ANY(ARRAY(SELECT id FROM picked))`: the picks
-- become one array, computed once, and the only plan left is the primary key index read
-- for those ids (sequential and bitmap scans are off for the claim), with no join to
-- order. Same rows, same locks (still taken by the CTE, SKIP LOCKED); the rows come back
-- in id order instead of the pick's order, which the worker does not rely on.
-- ClaimPlanTests.theClaimWalksTheClaimableIndexNotTheTable holds the plan, made on an
-- empty queue.

CREATE OR REPLACE FUNCTION payment_claim(p_limit int, p_owner text, p_lease_s float8, p_timeout_ms int)
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
    -- partial index of claimable rows. The picks are read back as one array, by primary
    -- key: no join whose order the statistics could get wrong.
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
    WHERE j.id = ANY(ARRAY(SELECT picked.id FROM picked))
    RETURNING j.id, j.idempotency_key, j.amount_minor, j.currency::text, j.debtor, j.creditor, j.attempt, j.max_attempts,
              COALESCE(j.give_up_at, j.created_at + interval '1 hour'), j.cancel_requested_at IS NOT NULL, j.claim_seq,
              greatest(EXTRACT(EPOCH FROM now() - j.run_at), 0)::float8;
    PERFORM payment_call_in_time('payment_claim', p_timeout_ms);
END
$$;
