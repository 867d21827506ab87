-- Status reads in batches: many payments in one statement.
--
-- Through transaction pooling each statement costs a round trip through the pooler and
-- HAProxy, a parse, a bind and a function call on the node, however small its answer.
-- Concurrent `GET /v1/payments/{id}` reads are gathered while one batch is in flight and
-- sent as the next (ReadBatcher): at load, one statement carries tens of reads; alone, a
-- read is a batch of one and waits for nothing.
--
-- Each read keeps its own freshness: every token is compared with the replica's replay
-- position first, and only then are the payments read, in a query of their own (a
-- VOLATILE function's query takes a new snapshot when it runs), exactly as 0014's
-- payment_status does for one. A read whose token the node had not replayed gets
-- fresh = false and is read again from the primary by its caller.
--
-- One row per element of `payments`, in its order: payment_status's columns, then
-- `item`, the element's position (from 1). `tokens` has one element per payment (NULL
-- or '' for a read without a token).
CREATE FUNCTION payment_status_batch(payments bigint[], tokens text[])
RETURNS TABLE (in_recovery boolean, node text, lag_seconds float8, fresh boolean,
               id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text,
               priority smallint, max_attempts integer, state text, attempt integer, last_error text, charge_id text,
               created_at text, updated_at text, finished_at text, give_up_at text, failure_reason text,
               cancel_requested_at text, held_reason text, postings text, item integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    on_replica boolean := pg_is_in_recovery();
    replayed pg_lsn := CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() END;
    caught_up boolean[];
BEGIN
    IF coalesce(cardinality(payments), 0) <> coalesce(cardinality(tokens), 0) THEN
        RAISE EXCEPTION 'payment_status_batch: % payments but % tokens', cardinality(payments), cardinality(tokens);
    END IF;
    -- Every token against one replay position read before the snapshot below.
    SELECT array_agg(CASE WHEN coalesce(t, '') = '' OR NOT on_replica THEN true ELSE replayed >= t::pg_lsn END ORDER BY n)
      INTO caught_up FROM unnest(tokens) WITH ORDINALITY AS u(t, n);
    RETURN QUERY
    SELECT s.*, u.n::integer
    FROM unnest(payments) WITH ORDINALITY AS u(p, n)
    CROSS JOIN LATERAL payment_status_in_snapshot(u.p, CASE WHEN caught_up[u.n] THEN NULL ELSE 'FFFFFFFF/FFFFFFFF' END) s
    ORDER BY u.n;
END $$;
