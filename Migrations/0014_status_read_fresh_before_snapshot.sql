-- The status read's freshness is decided before its snapshot is taken.
--
-- 0013's payment_status is STABLE: it reads the calling statement's snapshot, taken when
-- the statement began, while its `fresh` column compares the replica's replay position
-- with the token later, during the statement. A write replayed between the two was
-- vouched for and not shown: a cancel read back as `queued` with fresh = true (the API
-- suite, 2026-12-04; ReadFreshnessTests reproduces it).
--
-- 0013's function stays, renamed, as the read in a given snapshot. payment_status is now
-- a VOLATILE wrapper: it compares the replay position first, then calls the read in a
-- query of its own, and a VOLATILE function's query takes a new snapshot when it runs. A
-- replica that had replayed the token when it was compared shows every write it covers.
-- The read gets no token when the node had caught up (fresh) and the highest position
-- otherwise (not fresh on a replica; the primary is always fresh).
ALTER FUNCTION payment_status(bigint, text) RENAME TO payment_status_in_snapshot;

CREATE FUNCTION payment_status(payment bigint, token text)
RETURNS TABLE (in_recovery boolean, node text, lag_seconds float8, fresh boolean,
               id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text,
               priority smallint, max_attempts integer, state text, attempt integer, last_error text, charge_id text,
               created_at text, updated_at text, finished_at text, give_up_at text, failure_reason text,
               cancel_requested_at text, held_reason text, postings text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    caught_up boolean := token IS NULL OR NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= token::pg_lsn;
BEGIN
    RETURN QUERY SELECT * FROM payment_status_in_snapshot(payment, CASE WHEN caught_up THEN NULL ELSE 'FFFFFFFF/FFFFFFFF' END);
END $$;
