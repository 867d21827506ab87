-- A queue whose cost does not grow with history.
--
-- Before: every payment ever made stayed in payment_jobs. Measured with 347,200 finished
-- payments (README, "Where the cost grows with history"): 0% HOT updates (the state is in
-- partial-index predicates, so every claim and completion wrote a new entry into every
-- index, the 22 MB key index included), dead entries piling up in the claimable index
-- between vacuums of the whole table, and counts that scanned it.
--
-- After: payment_queue holds only jobs that are queued, running or reconciling. The
-- fenced statement that records a final outcome deletes the job from the queue and
-- inserts it, with its ledger entries, into payment_history, partitioned by ranges of
-- ten million ids. Keys live in payment_keys, which only ever grows by inserts: one key names one
-- payment for ever, whether it is queued, finished or archived. `payment_jobs` becomes a
-- view of the queue and the history, for people and proofs that want every payment.

ALTER TABLE payment_jobs RENAME TO payment_queue;
ALTER SEQUENCE payment_jobs_id_seq RENAME TO payment_ids;

-- Idempotency keys. COLLATE "C" so `LIKE 'prefix-%'` (progress of a run, the proofs)
-- is an index range scan, not a scan of every key.
CREATE TABLE payment_keys (
    idempotency_key     text COLLATE "C" PRIMARY KEY,
    payment_id          bigint NOT NULL,
    -- Canonical form of the request body: a reused key with another body is refused.
    request_fingerprint text   NOT NULL
);
INSERT INTO payment_keys (idempotency_key, payment_id, request_fingerprint)
SELECT idempotency_key, id, request_fingerprint FROM payment_queue
UNION ALL
SELECT idempotency_key, id, request_fingerprint FROM payment_jobs_archive
ON CONFLICT (idempotency_key) DO NOTHING;

-- Finished payments, immutable. Same columns in the same order as the queue, so the
-- move is `INSERT … SELECT` of the deleted row. Partitioned by id, not by finish time:
-- a read by id (`GET /v1/payments/{id}`) is then planned against one partition (the
-- bound id prunes the others at plan time); partitioned by month, every read planned
-- every month's partition, and planning alone took 1.3 ms of a 1.6 ms read. Ids are
-- given in order at intake, so a range of ids is also a span of time: a whole old range
-- is what retention would detach.
CREATE TABLE payment_history (LIKE payment_queue) PARTITION BY RANGE (id);
ALTER TABLE payment_history
    ALTER COLUMN finished_at SET NOT NULL,
    ADD CONSTRAINT payment_history_terminal CHECK (state IN ('succeeded', 'failed', 'cancelled')),
    ADD CONSTRAINT payment_history_succeeded_charge CHECK ((state = 'succeeded') = (charge_id IS NOT NULL)),
    ADD CONSTRAINT payment_history_pkey PRIMARY KEY (id);
-- Jobs finished in the last minute (/v1/stats), prune by age: a range at the end.
CREATE INDEX payment_history_finished_at ON payment_history (finished_at);
-- Ids beyond the partitions created so far land here rather than fail.
CREATE TABLE payment_history_default PARTITION OF payment_history DEFAULT;

-- Creates the partitions (ten million ids each) from id 0 up to `ahead` partitions past
-- the last id given; returns how many it created. Safe to call from several servers at
-- once and again and again: an existing partition, or one whose ids the default
-- partition already holds, is skipped.
CREATE FUNCTION payment_history_add_partitions(ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    size    constant bigint := 10000000;
    last_id bigint;
    name    text;
    created integer := 0;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO last_id FROM payment_ids;
    FOR p IN 0 .. last_id / size + ahead LOOP
        name := format('payment_history_p%s', lpad(p::text, 4, '0'));
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF payment_history FOR VALUES FROM (%s) TO (%s)',
                           name, p * size, (p + 1) * size);
            created := created + 1;
        EXCEPTION
            WHEN duplicate_table THEN NULL;  -- another server created it first
            WHEN check_violation THEN NULL;  -- the default partition holds ids of that range
        END;
    END LOOP;
    RETURN created;
END $$;

SELECT payment_history_add_partitions(2);

-- Totals by final state, so counts do not scan the history. Sharded by server backend:
-- completions on different connections do not wait on one row.
CREATE TABLE payment_history_totals (
    state text    NOT NULL,
    shard integer NOT NULL,
    jobs  bigint  NOT NULL,
    PRIMARY KEY (state, shard)
);

CREATE FUNCTION payment_history_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_history_totals AS t (state, shard, jobs)
    SELECT state, pg_backend_pid() % 16, count(*) FROM inserted GROUP BY state
    ON CONFLICT (state, shard) DO UPDATE SET jobs = t.jobs + excluded.jobs;
    RETURN NULL;
END $$;

CREATE FUNCTION payment_history_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payment_history_totals AS t (state, shard, jobs)
    SELECT state, pg_backend_pid() % 16, -count(*) FROM deleted GROUP BY state
    ON CONFLICT (state, shard) DO UPDATE SET jobs = t.jobs + excluded.jobs;
    RETURN NULL;
END $$;

CREATE TRIGGER payment_history_count_inserted AFTER INSERT ON payment_history
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION payment_history_count_inserted();
CREATE TRIGGER payment_history_count_deleted AFTER DELETE ON payment_history
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION payment_history_count_deleted();

-- A finished payment never changes; a succeeded one is never deleted (its ledger entries
-- point at it). Failed and cancelled ones may be moved to the archive by `payments prune`.
CREATE FUNCTION payment_history_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR OLD.state = 'succeeded' THEN
        RAISE EXCEPTION 'payment % is % and cannot change', OLD.id, OLD.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER payment_history_guard BEFORE UPDATE OR DELETE ON payment_history
    FOR EACH ROW EXECUTE FUNCTION payment_history_guard();

-- The ledger's job may be in the queue's past: its integrity is the completion
-- statement's (both written together) and the history's guard (never deleted).
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_job_id_fkey;

-- The move of what is already finished.
INSERT INTO payment_history
SELECT * FROM payment_queue WHERE state IN ('succeeded', 'failed', 'cancelled');
DELETE FROM payment_queue WHERE state IN ('succeeded', 'failed', 'cancelled');

-- The queue now refuses a finished job: the only way to finish is the move.
ALTER TABLE payment_queue ADD CONSTRAINT payment_queue_open CHECK (state IN ('queued', 'running', 'reconciling'));
DROP TRIGGER payment_jobs_terminal_guard ON payment_queue;
DROP FUNCTION payment_jobs_terminal_guard();
-- Keys are unique in payment_keys; nothing looks the queue up by key or by finish time.
ALTER TABLE payment_queue DROP CONSTRAINT payment_jobs_idempotency_key_key;
DROP INDEX payment_jobs_finished_at;

-- Every payment, queued or finished (not archived), for people, scripts and proofs.
CREATE VIEW payment_jobs AS
    SELECT * FROM payment_queue
    UNION ALL
    SELECT * FROM payment_history;

-- Finishes queued jobs without running them (an operator cancelling payments that must
-- not be made; tests ageing failures for retention): moved to the history as `failed` or
-- `cancelled` at `finished`. Never `succeeded`: that takes a charge and its postings,
-- which only the completion statement writes. A running job's worker is fenced off (its
-- row is gone); cancel only jobs no gateway call is in flight for. Returns how many moved.
CREATE FUNCTION payment_queue_finish(ids bigint[], final_state text, reason text, finished timestamptz DEFAULT now())
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE moved bigint;
BEGIN
    IF final_state NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'payment_queue_finish: final_state must be failed or cancelled, not %', final_state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH gone AS (DELETE FROM payment_queue WHERE id = ANY(ids) RETURNING *),
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

-- The payments whose keys match a LIKE pattern: a range of the key index, then one
-- lookup by id each, so a run's progress costs its own size, not the history's.
CREATE FUNCTION payments_by_key(pattern text) RETURNS SETOF payment_jobs LANGUAGE sql STABLE AS $$
    SELECT j.* FROM payment_keys k JOIN payment_jobs j ON j.id = k.payment_id
    WHERE k.idempotency_key LIKE pattern
$$;

ANALYZE payment_queue;
ANALYZE payment_keys;
ANALYZE payment_history;
