-- Guards a review of 0006 found missing.

-- payment_queue_finish finished any open job it was given: a job claimed after the
-- caller chose it (its DELETE re-checks only the id on the claimed row) was recorded
-- cancelled while its worker charged it, for ever. It now finishes only jobs in
-- `states` (queued by default), re-checked on the row it deletes; running or reconciling
-- jobs (money may be moving) only when the caller names those states, as tests and
-- benchmarks do after killing their servers.
DROP FUNCTION payment_queue_finish(bigint[], text, text, timestamptz);
CREATE FUNCTION payment_queue_finish(ids bigint[], final_state text, reason text, finished timestamptz DEFAULT now(),
                                     states text[] DEFAULT ARRAY['queued'])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE moved bigint;
BEGIN
    IF final_state NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'payment_queue_finish: final_state must be failed or cancelled, not %', final_state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH gone AS (DELETE FROM payment_queue WHERE id = ANY(ids) AND state = ANY(states) RETURNING *),
    ins AS (
        INSERT INTO payment_history (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
                                     state, attempt, max_attempts, priority, run_at, lease_owner, lease_expires_at,
                                     last_error, charge_id, created_at, claimed_at, updated_at, finished_at, lease_losses)
        SELECT id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
               final_state, attempt, max_attempts, priority, run_at, NULL, NULL,
               reason, NULL, created_at, claimed_at, now(), finished, lease_losses
        FROM gone RETURNING 1)
    SELECT count(*) INTO moved FROM ins;
    RETURN moved;
END $$;

-- Partition upkeep ran every minute from every server and, once the default partition
-- held ids of a range, failed there each time after scanning the default partition
-- under an exclusive lock that completions and reads queue behind. Now: a range whose
-- ids the default partition holds is skipped after one primary-key probe, and the
-- creation waits at most 1 s for its lock (skipped, tried again a minute later).
CREATE OR REPLACE FUNCTION payment_history_add_partitions(ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    size    constant bigint := 10000000;
    last_id bigint;
    name    text;
    created integer := 0;
BEGIN
    PERFORM set_config('lock_timeout', '1s', true);
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO last_id FROM payment_ids;
    FOR p IN 0 .. last_id / size + ahead LOOP
        name := format('payment_history_p%s', lpad(p::text, 4, '0'));
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        CONTINUE WHEN EXISTS (SELECT 1 FROM payment_history_default WHERE id >= p * size AND id < (p + 1) * size);
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF payment_history FOR VALUES FROM (%s) TO (%s)',
                           name, p * size, (p + 1) * size);
            created := created + 1;
        EXCEPTION
            WHEN duplicate_table THEN NULL;      -- another server created it first
            WHEN check_violation THEN NULL;      -- the default partition took ids of that range meanwhile
            WHEN lock_not_available THEN NULL;   -- busy: next time
        END;
    END LOOP;
    RETURN created;
END $$;

-- Two completions on one shard, each with succeeded and failed jobs, could lock the two
-- totals rows in opposite orders (deadlock, retried): rows are now upserted in state order.
CREATE OR REPLACE FUNCTION payment_history_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_history_totals AS t (state, shard, jobs)
    SELECT state, pg_backend_pid() % 16, count(*) FROM inserted GROUP BY state ORDER BY state
    ON CONFLICT (state, shard) DO UPDATE SET jobs = t.jobs + excluded.jobs;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION payment_history_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_history_totals AS t (state, shard, jobs)
    SELECT state, pg_backend_pid() % 16, -count(*) FROM deleted GROUP BY state ORDER BY state
    ON CONFLICT (state, shard) DO UPDATE SET jobs = t.jobs + excluded.jobs;
    RETURN NULL;
END $$;

-- The queue no longer has a foreign key to the catalog (0007): a currency is never
-- removed or renamed, so a payment's currency always stays in it.
CREATE FUNCTION currencies_never_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'currency % cannot be removed or renamed: payments may use it', OLD.code
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER currencies_never_removed BEFORE DELETE OR UPDATE OF code ON currencies
    FOR EACH ROW EXECUTE FUNCTION currencies_never_removed();
