-- Payments that get made: a payment fails only for a reason the payer can act on, a
-- cancel never finishes a payment that was charged, and a payment the processor cannot
-- settle alone is held for an operator instead of being asked about every 5 s.
--
-- give_up_at          the end of the payment's retry budget, a time, set at intake (its own
--                     give_up_after_seconds, or the intake's --give-up-after); NULL only for
--                     payments queued before this migration (then created_at + 1 hour). Our own faults (timeouts, 5xx,
--                     lost answers, requests in progress, lost leases) only delay a payment
--                     until then; only past it, with the gateway proving no charge, may it
--                     fail.
-- failure_reason      why a `failed` payment failed, from a closed set: a decline code the
--                     payer can act on, or budget_exhausted. NULL for every other state (and
--                     for payments failed before this migration: their last_error says why).
-- cancel_requested_at a cancel was asked for a payment whose request may have reached the
--                     gateway: it ends `cancelled` only once the gateway proves no charge
--                     after every deadline, `succeeded` if it was charged.
-- held_reason         a `reconciling` payment that cannot settle by itself (the gateway holds
--                     a charge under its key for another amount or currency): not asked
--                     about again until an operator acts.
-- claim_seq           raised by every claim (a worker's or a reconciler's), never lowered:
--                     the fence of every outcome. `attempt` could not be: a claim nobody
--                     received, a release at shutdown and a request found in progress refund
--                     it, so (owner, attempt) came round again and a late write of an earlier
--                     claim matched a newer one.
-- charge_deadline_at  the latest deadline of any charge request that may have been sent for
--                     the payment (each claim's lease end: a worker never sends a request
--                     whose deadline is later). "No charge" from the gateway is final only
--                     after it: every move to `reconciling` waits for it, and the reconciler
--                     takes no payment before it plus the margin.
--
-- The queue and the history keep the same columns in the same order (the completion moves
-- a row with `INSERT … SELECT`, the view unions them), so both get the four; the archive
-- names its columns and gets them too. All nullable without a default: no table rewrite,
-- however long the history.
ALTER TABLE payment_queue
    ADD COLUMN give_up_at timestamptz,
    ADD COLUMN failure_reason text,
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN held_reason text,
    ADD COLUMN claim_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN charge_deadline_at timestamptz;
ALTER TABLE payment_history
    ADD COLUMN give_up_at timestamptz,
    ADD COLUMN failure_reason text,
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN held_reason text,
    ADD COLUMN claim_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN charge_deadline_at timestamptz;
ALTER TABLE payment_jobs_archive
    ADD COLUMN give_up_at timestamptz,
    ADD COLUMN failure_reason text,
    ADD COLUMN cancel_requested_at timestamptz,
    ADD COLUMN held_reason text,
    ADD COLUMN claim_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN charge_deadline_at timestamptz;
-- Payments queued before this migration: a running one may have a request out until its
-- lease ends.
UPDATE payment_queue SET charge_deadline_at = lease_expires_at WHERE lease_expires_at IS NOT NULL;

ALTER TABLE payment_queue
    ADD CONSTRAINT payment_queue_no_failure_reason CHECK (failure_reason IS NULL),
    ADD CONSTRAINT payment_queue_held_reason CHECK (held_reason IS NULL OR (state = 'reconciling' AND held_reason IN ('charge_mismatch')));
-- The closed set of failure reasons (PaymentsCore's FailureReason has the same cases).
-- Adding it reads every finished payment once under the history's exclusive lock
-- (seconds at ten million): apply this migration, as 0006, with no server running.
ALTER TABLE payment_history
    ADD CONSTRAINT payment_history_failure_reason CHECK (
        failure_reason IS NULL
        OR (state = 'failed' AND failure_reason IN ('card_declined', 'insufficient_funds', 'account_blocked', 'declined', 'budget_exhausted')));

-- The view of every payment picks up the new columns (appended, as in both tables).
CREATE OR REPLACE VIEW payment_jobs AS
    SELECT * FROM payment_queue
    UNION ALL
    SELECT * FROM payment_history;

-- `payment_queue_finish` was an operator's cancel for queued payments, but a queued payment
-- may be charged already (a lost answer sends it back to `queued` with its charge made; a
-- reaped or released one may have a request still on its way). It now finishes only
-- payments no request ever left for: queued and never claimed. Everything else is
-- cancelled through `payment_cancel` (the API's and `payments cancel`'s), which asks the
-- gateway first. A `failed` finish names its reason from the closed set.
DROP FUNCTION payment_queue_finish(bigint[], text, text, timestamptz, text[]);

-- Moves the open payments `ids` (the caller has chosen and locked them under its own
-- conditions) to the history as `final_state`, with `note` as their last error. The one
-- place outside the completion statement that finishes a payment without a charge.
CREATE FUNCTION payment_queue_move(ids bigint[], final_state text, note text, finished timestamptz, failure text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE moved bigint;
BEGIN
    WITH gone AS (DELETE FROM payment_queue WHERE id = ANY(ids) RETURNING *),
    ins AS (
        INSERT INTO payment_history (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
                                     state, attempt, max_attempts, priority, run_at, lease_owner, lease_expires_at,
                                     last_error, charge_id, created_at, claimed_at, updated_at, finished_at, lease_losses,
                                     give_up_at, failure_reason, cancel_requested_at, held_reason, claim_seq, charge_deadline_at)
        SELECT id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
               final_state, attempt, max_attempts, priority, run_at, NULL, NULL,
               note, NULL, created_at, claimed_at, now(), finished, lease_losses,
               give_up_at, failure, CASE WHEN final_state = 'cancelled' THEN COALESCE(cancel_requested_at, now()) END, NULL,
               claim_seq, charge_deadline_at
        FROM gone RETURNING 1)
    SELECT count(*) INTO moved FROM ins;
    RETURN moved;
END $$;

CREATE FUNCTION payment_queue_finish(ids bigint[], final_state text, reason text, finished timestamptz DEFAULT now(),
                                     failure text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF final_state NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'payment_queue_finish: final_state must be failed or cancelled, not %', final_state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (final_state = 'failed') <> (failure IS NOT NULL) THEN
        RAISE EXCEPTION 'payment_queue_finish: a failed payment needs a failure reason (and only a failed one has one)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Locked and re-checked on the rows themselves: a payment claimed meanwhile is left alone.
    RETURN payment_queue_move(ARRAY(SELECT id FROM payment_queue WHERE id = ANY(ids) AND state = 'queued' AND claimed_at IS NULL
                                    FOR UPDATE), final_state, reason, finished, failure);
END $$;

-- A cancel request for each id, in one statement (through transaction pooling):
--   never claimed (no request ever left)  -> cancelled now                    ('cancelled')
--   queued after an attempt               -> reconciling, asked once its last request's
--                                            deadline plus `margin` has passed ('pending')
--   running or reconciling                -> flagged; the worker's or the reconciler's
--                                            outcome decides                   ('pending')
--   held for an operator                  -> flagged                          ('pending')
--   finished                              -> unchanged                        (its state)
--   unknown id                            -> no row
-- A flagged payment ends `cancelled` only once the gateway proves no charge after every
-- deadline; a charge found ends it `succeeded` (too late to cancel).
CREATE FUNCTION payment_cancel(ids bigint[], margin interval)
RETURNS TABLE (payment_id bigint, outcome text) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE now_ids bigint[];
BEGIN
    -- Locked, so no worker claims them meanwhile (claims skip locked rows).
    SELECT COALESCE(array_agg(q.id), '{}') INTO now_ids FROM (
        SELECT id FROM payment_queue WHERE id = ANY(ids) AND state = 'queued' AND claimed_at IS NULL FOR UPDATE) q;
    PERFORM payment_queue_finish(now_ids, 'cancelled', 'cancelled before any request was sent');
    RETURN QUERY SELECT unnest(now_ids), 'cancelled'::text;
    RETURN QUERY
        WITH flagged AS (
            UPDATE payment_queue q SET
                cancel_requested_at = COALESCE(q.cancel_requested_at, now()),
                state = CASE WHEN q.state = 'queued' THEN 'reconciling' ELSE q.state END,
                run_at = CASE WHEN q.state = 'queued' THEN greatest(now(), q.charge_deadline_at) + margin ELSE q.run_at END,
                updated_at = now()
            WHERE q.id = ANY(ids) AND NOT q.id = ANY(now_ids)
            RETURNING q.id)
        SELECT f.id, 'pending'::text FROM flagged f;
    RETURN QUERY SELECT h.id, h.state FROM payment_history h WHERE h.id = ANY(ids) AND NOT h.id = ANY(now_ids);
    RETURN QUERY SELECT a.id, a.state FROM payment_jobs_archive a WHERE a.id = ANY(ids);
END $$;

-- The history's running totals count failed payments by reason too ('failed:<reason>';
-- 'failed' alone for those failed before reasons were kept), so `payments status`, /v1/stats
-- and the dashboard show the reasons without reading the history.
CREATE OR REPLACE FUNCTION payment_history_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_history_totals AS t (state, shard, jobs)
    SELECT state || COALESCE(':' || failure_reason, ''), pg_backend_pid() % 16, count(*) FROM inserted GROUP BY 1 ORDER BY 1
    ON CONFLICT (state, shard) DO UPDATE SET jobs = t.jobs + excluded.jobs;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION payment_history_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_history_totals AS t (state, shard, jobs)
    SELECT state || COALESCE(':' || failure_reason, ''), pg_backend_pid() % 16, -count(*) FROM deleted GROUP BY 1 ORDER BY 1
    ON CONFLICT (state, shard) DO UPDATE SET jobs = t.jobs + excluded.jobs;
    RETURN NULL;
END $$;

-- An operator's way out of a held payment (`payments resolve`), fenced on it still being
-- held: 'cancelled' once the provider refunded the charge that was not its payment's (the
-- caller proved that first), or 'recheck' (back to the reconciler, asked again now).
-- Returns the payment's new state, or NULL if it is not held.
CREATE FUNCTION payment_resolve_held(payment bigint, resolution text, note text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE moved bigint;
BEGIN
    IF resolution NOT IN ('cancelled', 'recheck') THEN
        RAISE EXCEPTION 'payment_resolve_held: resolution must be cancelled or recheck, not %', resolution
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF resolution = 'recheck' THEN
        UPDATE payment_queue SET held_reason = NULL, run_at = now(), last_error = note, updated_at = now()
        WHERE id = payment AND state = 'reconciling' AND held_reason IS NOT NULL;
        RETURN CASE WHEN FOUND THEN 'reconciling' END;
    END IF;
    moved := payment_queue_move(ARRAY(SELECT id FROM payment_queue WHERE id = payment AND state = 'reconciling'
                                      AND held_reason IS NOT NULL FOR UPDATE), 'cancelled', note, now(), NULL);
    RETURN CASE WHEN moved = 1 THEN 'cancelled' END;
END $$;

-- Reconciling payments held for an operator, for `payments status` and the dashboard.
CREATE INDEX payment_queue_held ON payment_queue (id) WHERE held_reason IS NOT NULL;
