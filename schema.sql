--
-- PostgreSQL database dump
--

--
-- Name: currencies_never_removed(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.currencies_never_removed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'currency % cannot be removed or renamed: payments may use it', OLD.code
        USING ERRCODE = 'restrict_violation';
END $$;

--
-- Name: ledger_entries_add_partitions(integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ledger_entries_add_partitions(ahead integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    last_id bigint;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO last_id FROM payment_ids;
    RETURN payments_add_range_partitions('ledger_entries', 'ledger_entries_default', 'job_id', 'ledger_entries_p', 5,
                                         1000000, (last_id / 10000000 + ahead + 1) * 10000000);
END $$;

--
-- Name: ledger_entries_guard(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.ledger_entries_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'the % posting of payment % cannot change: postings are never changed or removed', OLD.side, OLD.job_id
        USING ERRCODE = 'check_violation';
END $$;

--
-- Name: payment_call_in_time(text, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_call_in_time(p_function text, p_timeout_ms integer) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF clock_timestamp() > statement_timestamp() + p_timeout_ms * interval '1 millisecond' THEN
        RAISE EXCEPTION 'canceling statement due to statement timeout (%, % ms)', p_function, p_timeout_ms
            USING ERRCODE = 'query_canceled';
    END IF;
END
$$;

--
-- Name: payment_cancel(bigint[], interval); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_cancel(ids bigint[], margin interval) RETURNS TABLE(payment_id bigint, outcome text)
    LANGUAGE plpgsql
    AS $$
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

--
-- Name: payment_claim(integer, text, double precision, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_claim(p_limit integer, p_owner text, p_lease_s double precision, p_timeout_ms integer) RETURNS TABLE(id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text, attempt integer, max_attempts integer, give_up_at timestamp with time zone, cancel_requested boolean, claim_seq bigint, waited_s double precision)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET enable_bitmapscan TO 'off'
    SET enable_sort TO 'off'
    SET enable_hashjoin TO 'off'
    SET enable_mergejoin TO 'off'
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_generic_plan'
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

--
-- Name: payment_complete(bigint[], bigint[], text[], text[], text[], text[], double precision[], integer[], text[], text[], bigint[], bigint[], text, text, double precision, integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_complete(p_ids bigint[], p_claims bigint[], p_outcomes text[], p_states text[], p_charge_ids text[], p_errors text[], p_delays double precision[], p_refunds integer[], p_failures text[], p_holds text[], p_finished bigint[], p_kept bigint[], p_fenced_state text, p_owner text, p_margin_s double precision, p_timeout_ms integer) RETURNS TABLE(id bigint, outcome text, latency_s double precision, failure text)
    LANGUAGE plpgsql
    SET enable_nestloop TO 'off'
    SET enable_seqscan TO 'off'
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_generic_plan'
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

--
-- Name: payment_history_add_partitions(integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_history_add_partitions(ahead integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    last_id bigint;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO last_id FROM payment_ids;
    RETURN payments_add_range_partitions('payment_history', 'payment_history_default', 'id', 'payment_history_p', 4,
                                         10000000, (last_id / 10000000 + ahead + 1) * 10000000);
END $$;

--
-- Name: payment_history_count_deleted(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_history_count_deleted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO payment_history_totals AS t (state, shard, jobs)
    SELECT state || COALESCE(':' || failure_reason, ''), pg_backend_pid() % 16, -count(*) FROM deleted GROUP BY 1 ORDER BY 1
    ON CONFLICT (state, shard) DO UPDATE SET jobs = t.jobs + excluded.jobs;
    RETURN NULL;
END $$;

--
-- Name: payment_history_count_inserted(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_history_count_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO payment_history_totals AS t (state, shard, jobs)
    SELECT state || COALESCE(':' || failure_reason, ''), pg_backend_pid() % 16, count(*) FROM inserted GROUP BY 1 ORDER BY 1
    ON CONFLICT (state, shard) DO UPDATE SET jobs = t.jobs + excluded.jobs;
    RETURN NULL;
END $$;

--
-- Name: payment_history_guard(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_history_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR OLD.state = 'succeeded' THEN
        RAISE EXCEPTION 'payment % is % and cannot change', OLD.id, OLD.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN OLD;
END $$;

--
-- Name: payment_queue_finish(bigint[], text, text, timestamp with time zone, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_queue_finish(ids bigint[], final_state text, reason text, finished timestamp with time zone DEFAULT now(), failure text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
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

--
-- Name: payment_queue_move(bigint[], text, text, timestamp with time zone, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_queue_move(ids bigint[], final_state text, note text, finished timestamp with time zone, failure text) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
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

--
-- Name: payment_read_node(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_read_node() RETURNS TABLE(in_recovery boolean, node text, lag_seconds double precision, fresh boolean)
    LANGUAGE sql STABLE
    AS $$
    SELECT pg_is_in_recovery(),
           COALESCE(NULLIF(current_setting('payments.node', true), ''), current_setting('cluster_name')),
           CASE WHEN NOT pg_is_in_recovery() THEN 0::float8
                WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
                ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0) END,
           true
$$;

--
-- Name: payment_resolve_held(bigint, text, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_resolve_held(payment bigint, resolution text, note text) RETURNS text
    LANGUAGE plpgsql
    AS $$
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

--
-- Name: payment_status(bigint, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_status(payment bigint, token text) RETURNS TABLE(in_recovery boolean, node text, lag_seconds double precision, fresh boolean, id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text, priority smallint, max_attempts integer, state text, attempt integer, last_error text, charge_id text, created_at text, updated_at text, finished_at text, give_up_at text, failure_reason text, cancel_requested_at text, held_reason text, postings text)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
DECLARE
    caught_up boolean := token IS NULL OR NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= token::pg_lsn;
BEGIN
    RETURN QUERY SELECT * FROM payment_status_in_snapshot(payment, CASE WHEN caught_up THEN NULL ELSE 'FFFFFFFF/FFFFFFFF' END);
END $$;

--
-- Name: payment_status_batch(bigint[], text[]); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_status_batch(payments bigint[], tokens text[]) RETURNS TABLE(in_recovery boolean, node text, lag_seconds double precision, fresh boolean, id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text, priority smallint, max_attempts integer, state text, attempt integer, last_error text, charge_id text, created_at text, updated_at text, finished_at text, give_up_at text, failure_reason text, cancel_requested_at text, held_reason text, postings text, item integer)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
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

--
-- Name: payment_status_in_snapshot(bigint, text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payment_status_in_snapshot(payment bigint, token text) RETURNS TABLE(in_recovery boolean, node text, lag_seconds double precision, fresh boolean, id bigint, idempotency_key text, amount_minor bigint, currency text, debtor text, creditor text, priority smallint, max_attempts integer, state text, attempt integer, last_error text, charge_id text, created_at text, updated_at text, finished_at text, give_up_at text, failure_reason text, cancel_requested_at text, held_reason text, postings text)
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
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

--
-- Name: payments_add_range_partitions(regclass, regclass, text, text, integer, bigint, bigint); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payments_add_range_partitions(parent regclass, default_partition regclass, key text, prefix text, digits integer, size bigint, upto bigint) RETURNS integer
    LANGUAGE plpgsql
    AS $_$
DECLARE
    name    text;
    taken   boolean;
    created integer := 0;
BEGIN
    PERFORM set_config('lock_timeout', '1s', true);
    FOR p IN 0 .. (upto - 1) / size LOOP
        name := prefix || lpad(p::text, digits, '0');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I >= $1 AND %I < $2)', default_partition, key, key)
            INTO taken USING p * size, (p + 1) * size;
        CONTINUE WHEN taken;
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%s) TO (%s)', name, parent, p * size, (p + 1) * size);
            created := created + 1;
        EXCEPTION
            WHEN duplicate_table THEN NULL;      -- another server created it first
            WHEN check_violation THEN NULL;      -- the default partition took ids of that range meanwhile
            WHEN lock_not_available THEN NULL;   -- busy: next time
        END;
    END LOOP;
    RETURN created;
END $_$;

--
-- Name: payment_history; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_history (
    id bigint NOT NULL,
    idempotency_key text NOT NULL,
    request_fingerprint text NOT NULL,
    amount_minor bigint NOT NULL,
    currency character(3) NOT NULL,
    debtor text NOT NULL,
    creditor text NOT NULL,
    state text NOT NULL,
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    priority smallint NOT NULL,
    run_at timestamp with time zone NOT NULL,
    lease_owner text,
    lease_expires_at timestamp with time zone,
    last_error text,
    charge_id text,
    created_at timestamp with time zone NOT NULL,
    claimed_at timestamp with time zone,
    updated_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL,
    lease_losses integer NOT NULL,
    give_up_at timestamp with time zone,
    failure_reason text,
    cancel_requested_at timestamp with time zone,
    held_reason text,
    claim_seq bigint DEFAULT 0 NOT NULL,
    charge_deadline_at timestamp with time zone,
    CONSTRAINT payment_history_failure_reason CHECK (((failure_reason IS NULL) OR ((state = 'failed'::text) AND (failure_reason = ANY (ARRAY['card_declined'::text, 'insufficient_funds'::text, 'account_blocked'::text, 'declined'::text, 'budget_exhausted'::text]))))),
    CONSTRAINT payment_history_succeeded_charge CHECK (((state = 'succeeded'::text) = (charge_id IS NOT NULL))),
    CONSTRAINT payment_history_terminal CHECK ((state = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text])))
)
PARTITION BY RANGE (id);

--
-- Name: payment_queue; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_queue (
    id bigint NOT NULL,
    idempotency_key text NOT NULL,
    request_fingerprint text NOT NULL,
    amount_minor bigint NOT NULL,
    currency character(3) NOT NULL,
    debtor text NOT NULL,
    creditor text NOT NULL,
    state text DEFAULT 'queued'::text NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 5 NOT NULL,
    priority smallint DEFAULT 100 NOT NULL,
    run_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_owner text,
    lease_expires_at timestamp with time zone,
    last_error text,
    charge_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    claimed_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    lease_losses integer DEFAULT 0 NOT NULL,
    give_up_at timestamp with time zone,
    failure_reason text,
    cancel_requested_at timestamp with time zone,
    held_reason text,
    claim_seq bigint DEFAULT 0 NOT NULL,
    charge_deadline_at timestamp with time zone,
    CONSTRAINT payment_queue_amount_minor_check CHECK ((amount_minor > 0)),
    CONSTRAINT payment_queue_attempt_check CHECK ((attempt >= 0)),
    CONSTRAINT payment_queue_creditor_check CHECK ((creditor ~ '^[A-Za-z0-9_.:-]{1,64}$'::text)),
    CONSTRAINT payment_queue_currency_code CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT payment_queue_debtor_check CHECK ((debtor ~ '^[A-Za-z0-9_.:-]{1,64}$'::text)),
    CONSTRAINT payment_queue_distinct_accounts CHECK ((debtor <> creditor)),
    CONSTRAINT payment_queue_finished CHECK (((state = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text])) = (finished_at IS NOT NULL))),
    CONSTRAINT payment_queue_held_reason CHECK (((held_reason IS NULL) OR ((state = 'reconciling'::text) AND (held_reason = ANY (ARRAY['charge_mismatch'::text, 'adopted_charge_missing'::text]))))),
    CONSTRAINT payment_queue_key_length CHECK (((length(idempotency_key) >= 1) AND (length(idempotency_key) <= 255))),
    CONSTRAINT payment_queue_lease CHECK (((state = 'running'::text) = ((lease_owner IS NOT NULL) AND (lease_expires_at IS NOT NULL)))),
    CONSTRAINT payment_queue_lease_losses_check CHECK ((lease_losses >= 0)),
    CONSTRAINT payment_queue_max_attempts_check CHECK (((max_attempts >= 1) AND (max_attempts <= 50))),
    CONSTRAINT payment_queue_no_failure_reason CHECK ((failure_reason IS NULL)),
    CONSTRAINT payment_queue_open CHECK ((state = ANY (ARRAY['queued'::text, 'running'::text, 'reconciling'::text]))),
    CONSTRAINT payment_queue_priority_check CHECK (((priority >= 0) AND (priority <= 1000))),
    CONSTRAINT payment_queue_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'running'::text, 'reconciling'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text]))),
    CONSTRAINT payment_queue_succeeded_charge CHECK (((state = 'succeeded'::text) = (charge_id IS NOT NULL)))
)
WITH (fillfactor='70', autovacuum_vacuum_scale_factor='0.02', autovacuum_vacuum_threshold='1000', autovacuum_analyze_scale_factor='0.02', autovacuum_vacuum_insert_scale_factor='0.05', autovacuum_vacuum_cost_delay='0', vacuum_truncate='false');

--
-- Name: payment_jobs; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.payment_jobs AS
 SELECT payment_queue.id,
    payment_queue.idempotency_key,
    payment_queue.request_fingerprint,
    payment_queue.amount_minor,
    payment_queue.currency,
    payment_queue.debtor,
    payment_queue.creditor,
    payment_queue.state,
    payment_queue.attempt,
    payment_queue.max_attempts,
    payment_queue.priority,
    payment_queue.run_at,
    payment_queue.lease_owner,
    payment_queue.lease_expires_at,
    payment_queue.last_error,
    payment_queue.charge_id,
    payment_queue.created_at,
    payment_queue.claimed_at,
    payment_queue.updated_at,
    payment_queue.finished_at,
    payment_queue.lease_losses,
    payment_queue.give_up_at,
    payment_queue.failure_reason,
    payment_queue.cancel_requested_at,
    payment_queue.held_reason,
    payment_queue.claim_seq,
    payment_queue.charge_deadline_at
   FROM public.payment_queue
UNION ALL
 SELECT payment_history.id,
    payment_history.idempotency_key,
    payment_history.request_fingerprint,
    payment_history.amount_minor,
    payment_history.currency,
    payment_history.debtor,
    payment_history.creditor,
    payment_history.state,
    payment_history.attempt,
    payment_history.max_attempts,
    payment_history.priority,
    payment_history.run_at,
    payment_history.lease_owner,
    payment_history.lease_expires_at,
    payment_history.last_error,
    payment_history.charge_id,
    payment_history.created_at,
    payment_history.claimed_at,
    payment_history.updated_at,
    payment_history.finished_at,
    payment_history.lease_losses,
    payment_history.give_up_at,
    payment_history.failure_reason,
    payment_history.cancel_requested_at,
    payment_history.held_reason,
    payment_history.claim_seq,
    payment_history.charge_deadline_at
   FROM public.payment_history;

--
-- Name: payments_by_key(text); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.payments_by_key(pattern text) RETURNS SETOF public.payment_jobs
    LANGUAGE plpgsql STABLE
    SET enable_seqscan TO 'off'
    AS $$
DECLARE
    head text := substring(pattern FROM '^[^%_\\]*');
    lo bigint;
    hi bigint;
BEGIN
    SELECT min(k.payment_id), max(k.payment_id) INTO lo, hi FROM payment_keys k
    WHERE k.idempotency_key >= head AND k.idempotency_key < head || chr(1114111) AND k.idempotency_key LIKE pattern;
    RETURN QUERY SELECT j.* FROM payment_jobs j WHERE j.id BETWEEN lo AND hi AND j.idempotency_key LIKE pattern;
END $$;

--
-- Name: currencies; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.currencies (
    code character(3) NOT NULL,
    minor_units smallint NOT NULL,
    CONSTRAINT currencies_code_check CHECK ((code ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT currencies_minor_units_check CHECK (((minor_units >= 0) AND (minor_units <= 4)))
);

--
-- Name: ledger_entries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ledger_entries (
    id bigint NOT NULL,
    job_id bigint NOT NULL,
    side text NOT NULL,
    account text NOT NULL,
    amount_minor bigint NOT NULL,
    currency character(3) NOT NULL,
    attempt integer NOT NULL,
    posted_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ledger_entries_currency_check1 CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT ledger_entries_side_check1 CHECK ((side = ANY (ARRAY['debit'::text, 'credit'::text]))),
    CONSTRAINT ledger_entries_sign CHECK ((((side = 'debit'::text) AND (amount_minor < 0)) OR ((side = 'credit'::text) AND (amount_minor > 0))))
)
PARTITION BY RANGE (job_id);

--
-- Name: ledger_entry_ids; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ledger_entry_ids
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: ledger_entry_ids; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ledger_entry_ids OWNED BY public.ledger_entries.id;

--
-- Name: ledger_entries_default; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ledger_entries_default (
    id bigint DEFAULT nextval('public.ledger_entry_ids'::regclass) NOT NULL,
    job_id bigint NOT NULL,
    side text NOT NULL,
    account text NOT NULL,
    amount_minor bigint NOT NULL,
    currency character(3) NOT NULL,
    attempt integer NOT NULL,
    posted_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ledger_entries_currency_check1 CHECK ((currency ~ '^[A-Z]{3}$'::text)),
    CONSTRAINT ledger_entries_side_check1 CHECK ((side = ANY (ARRAY['debit'::text, 'credit'::text]))),
    CONSTRAINT ledger_entries_sign CHECK ((((side = 'debit'::text) AND (amount_minor < 0)) OR ((side = 'credit'::text) AND (amount_minor > 0))))
);

--
-- Name: payment_history_default; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_history_default (
    id bigint NOT NULL,
    idempotency_key text NOT NULL,
    request_fingerprint text NOT NULL,
    amount_minor bigint NOT NULL,
    currency character(3) NOT NULL,
    debtor text NOT NULL,
    creditor text NOT NULL,
    state text NOT NULL,
    attempt integer NOT NULL,
    max_attempts integer NOT NULL,
    priority smallint NOT NULL,
    run_at timestamp with time zone NOT NULL,
    lease_owner text,
    lease_expires_at timestamp with time zone,
    last_error text,
    charge_id text,
    created_at timestamp with time zone NOT NULL,
    claimed_at timestamp with time zone,
    updated_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL,
    lease_losses integer NOT NULL,
    give_up_at timestamp with time zone,
    failure_reason text,
    cancel_requested_at timestamp with time zone,
    held_reason text,
    claim_seq bigint DEFAULT 0 NOT NULL,
    charge_deadline_at timestamp with time zone,
    CONSTRAINT payment_history_failure_reason CHECK (((failure_reason IS NULL) OR ((state = 'failed'::text) AND (failure_reason = ANY (ARRAY['card_declined'::text, 'insufficient_funds'::text, 'account_blocked'::text, 'declined'::text, 'budget_exhausted'::text]))))),
    CONSTRAINT payment_history_succeeded_charge CHECK (((state = 'succeeded'::text) = (charge_id IS NOT NULL))),
    CONSTRAINT payment_history_terminal CHECK ((state = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text])))
);

--
-- Name: payment_history_totals; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_history_totals (
    state text NOT NULL,
    shard integer NOT NULL,
    jobs bigint NOT NULL
);

--
-- Name: payment_ids; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.payment_queue ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.payment_ids
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: payment_jobs_archive; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_jobs_archive (
    id bigint NOT NULL,
    idempotency_key text NOT NULL,
    request_fingerprint text NOT NULL,
    amount_minor bigint NOT NULL,
    currency character(3) NOT NULL,
    debtor text NOT NULL,
    creditor text NOT NULL,
    state text DEFAULT 'queued'::text NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 5 NOT NULL,
    priority smallint DEFAULT 100 NOT NULL,
    run_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_owner text,
    lease_expires_at timestamp with time zone,
    last_error text,
    charge_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    claimed_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    archived_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_losses integer DEFAULT 0 NOT NULL,
    give_up_at timestamp with time zone,
    failure_reason text,
    cancel_requested_at timestamp with time zone,
    held_reason text,
    claim_seq bigint DEFAULT 0 NOT NULL,
    charge_deadline_at timestamp with time zone
);

--
-- Name: payment_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.payment_keys (
    idempotency_key text NOT NULL COLLATE pg_catalog."C",
    payment_id bigint NOT NULL,
    request_fingerprint text NOT NULL
);

--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version text NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

--
-- Name: ledger_entries_default; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries ATTACH PARTITION public.ledger_entries_default DEFAULT;

--
-- Name: payment_history_default; Type: TABLE ATTACH; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_history ATTACH PARTITION public.payment_history_default DEFAULT;

--
-- Name: ledger_entries id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries ALTER COLUMN id SET DEFAULT nextval('public.ledger_entry_ids'::regclass);

--
-- Name: currencies currencies_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.currencies
    ADD CONSTRAINT currencies_pkey PRIMARY KEY (code);

--
-- Name: ledger_entries ledger_entries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries
    ADD CONSTRAINT ledger_entries_pkey PRIMARY KEY (job_id, side);

--
-- Name: ledger_entries_default ledger_entries_default_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ledger_entries_default
    ADD CONSTRAINT ledger_entries_default_pkey PRIMARY KEY (job_id, side);

--
-- Name: payment_history payment_history_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_history
    ADD CONSTRAINT payment_history_pkey PRIMARY KEY (id);

--
-- Name: payment_history_default payment_history_default_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_history_default
    ADD CONSTRAINT payment_history_default_pkey PRIMARY KEY (id);

--
-- Name: payment_history_totals payment_history_totals_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_history_totals
    ADD CONSTRAINT payment_history_totals_pkey PRIMARY KEY (state, shard);

--
-- Name: payment_jobs_archive payment_jobs_archive_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_jobs_archive
    ADD CONSTRAINT payment_jobs_archive_pkey PRIMARY KEY (id);

--
-- Name: payment_keys payment_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_keys
    ADD CONSTRAINT payment_keys_pkey PRIMARY KEY (idempotency_key);

--
-- Name: payment_queue payment_queue_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.payment_queue
    ADD CONSTRAINT payment_queue_pkey PRIMARY KEY (id);

--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

--
-- Name: ledger_entries_account; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ledger_entries_account ON ONLY public.ledger_entries USING btree (account, posted_at);

--
-- Name: ledger_entries_default_account_posted_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ledger_entries_default_account_posted_at_idx ON public.ledger_entries_default USING btree (account, posted_at);

--
-- Name: payment_history_finished_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_history_finished_at ON ONLY public.payment_history USING btree (finished_at);

--
-- Name: payment_history_default_finished_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_history_default_finished_at_idx ON public.payment_history_default USING btree (finished_at);

--
-- Name: payment_history_prunable; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_history_prunable ON ONLY public.payment_history USING btree (finished_at) WHERE (state = ANY (ARRAY['failed'::text, 'cancelled'::text]));

--
-- Name: payment_history_default_finished_at_idx1; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_history_default_finished_at_idx1 ON public.payment_history_default USING btree (finished_at) WHERE (state = ANY (ARRAY['failed'::text, 'cancelled'::text]));

--
-- Name: payment_jobs_archive_key; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_jobs_archive_key ON public.payment_jobs_archive USING btree (idempotency_key);

--
-- Name: payment_queue_claimable; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_queue_claimable ON public.payment_queue USING btree (priority, run_at, id) WHERE (state = 'queued'::text);

--
-- Name: payment_queue_held; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_queue_held ON public.payment_queue USING btree (id) WHERE (held_reason IS NOT NULL);

--
-- Name: payment_queue_reconciling; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_queue_reconciling ON public.payment_queue USING btree (run_at) WHERE (state = 'reconciling'::text);

--
-- Name: payment_queue_running_lease; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX payment_queue_running_lease ON public.payment_queue USING btree (lease_expires_at) WHERE (state = 'running'::text);

--
-- Name: ledger_entries_default_account_posted_at_idx; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.ledger_entries_account ATTACH PARTITION public.ledger_entries_default_account_posted_at_idx;

--
-- Name: ledger_entries_default_pkey; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.ledger_entries_pkey ATTACH PARTITION public.ledger_entries_default_pkey;

--
-- Name: payment_history_default_finished_at_idx; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.payment_history_finished_at ATTACH PARTITION public.payment_history_default_finished_at_idx;

--
-- Name: payment_history_default_finished_at_idx1; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.payment_history_prunable ATTACH PARTITION public.payment_history_default_finished_at_idx1;

--
-- Name: payment_history_default_pkey; Type: INDEX ATTACH; Schema: public; Owner: -
--

ALTER INDEX public.payment_history_pkey ATTACH PARTITION public.payment_history_default_pkey;

--
-- Name: currencies currencies_never_removed; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER currencies_never_removed BEFORE DELETE OR UPDATE OF code ON public.currencies FOR EACH ROW EXECUTE FUNCTION public.currencies_never_removed();

--
-- Name: ledger_entries ledger_entries_guard; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ledger_entries_guard BEFORE DELETE OR UPDATE ON public.ledger_entries FOR EACH ROW EXECUTE FUNCTION public.ledger_entries_guard();

--
-- Name: payment_history payment_history_count_deleted; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER payment_history_count_deleted AFTER DELETE ON public.payment_history REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION public.payment_history_count_deleted();

--
-- Name: payment_history payment_history_count_inserted; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER payment_history_count_inserted AFTER INSERT ON public.payment_history REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION public.payment_history_count_inserted();

--
-- Name: payment_history payment_history_guard; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER payment_history_guard BEFORE DELETE OR UPDATE ON public.payment_history FOR EACH ROW EXECUTE FUNCTION public.payment_history_guard();

--
-- PostgreSQL database dump complete
--

