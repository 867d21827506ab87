-- The ledger, partitioned by payment id in ranges of one million.
--
-- Measured (README, "Benchmarks"): with ten million payments finished, the drain kept
-- 66% of its empty-table rate, and the index of postings by account had grown to 484 MB,
-- past shared_buffers. Every posting lands at its account, anywhere in that index, so
-- every job dirtied pages all over it, and after each checkpoint each of them went to the
-- WAL whole once more. With that index dropped, on the same topology, the drain went
-- from 4,021 to 6,939 jobs/s (the empty table's rate) and the completion from 188 ms to
-- 26 ms per batch, 64,023 blocks read from outside shared_buffers to 12.
--
-- Partitioned by job_id, a posting lands in the last range's indexes, the size of a
-- million payments' postings however long the history. Statements that name a payment
-- (the completion's insert, the status read with its bound id) touch one partition; a
-- statement of an account's postings reads each range's account index.
--
-- The primary key is (job_id, side), the constraint that refuses a second posting of a
-- payment: one index per posting fewer than the old surrogate key beside it. `id` stays,
-- the posting's number in posting order, without an index of its own.

ALTER TABLE ledger_entries RENAME TO ledger_entries_unpartitioned;
ALTER INDEX ledger_entries_pkey RENAME TO ledger_entries_unpartitioned_pkey;
ALTER INDEX ledger_entries_one_per_side RENAME TO ledger_entries_unpartitioned_one_per_side;
ALTER INDEX ledger_entries_account RENAME TO ledger_entries_unpartitioned_account;

CREATE SEQUENCE ledger_entry_ids AS bigint;
SELECT setval('ledger_entry_ids', COALESCE(max(id), 0) + 1, false) FROM ledger_entries_unpartitioned;

CREATE TABLE ledger_entries (
    id           bigint      NOT NULL DEFAULT nextval('ledger_entry_ids'),
    job_id       bigint      NOT NULL,
    side         text        NOT NULL CHECK (side IN ('debit', 'credit')),
    account      text        NOT NULL,
    -- Signed: debits negative, credits positive, so a balanced ledger sums to zero.
    amount_minor bigint      NOT NULL,
    -- The job's currency, checked against `currencies` when the job was taken in.
    currency     char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    attempt      integer     NOT NULL,
    posted_at    timestamptz NOT NULL DEFAULT now(),
    -- The database itself refuses a second posting of the same payment.
    CONSTRAINT ledger_entries_pkey PRIMARY KEY (job_id, side),
    CONSTRAINT ledger_entries_sign CHECK ((side = 'debit' AND amount_minor < 0) OR (side = 'credit' AND amount_minor > 0))
) PARTITION BY RANGE (job_id);
ALTER SEQUENCE ledger_entry_ids OWNED BY ledger_entries.id;

-- An account's statement.
CREATE INDEX ledger_entries_account ON ledger_entries (account, posted_at);
-- Ids beyond the partitions created so far land here rather than fail.
CREATE TABLE ledger_entries_default PARTITION OF ledger_entries DEFAULT;

-- A posting is money moved: never changed, never removed (a correction is a new
-- payment). The application only inserts; this refuses anyone else too.
CREATE FUNCTION ledger_entries_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the % posting of payment % cannot change: postings are never changed or removed', OLD.side, OLD.job_id
        USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER ledger_entries_guard BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_guard();

-- Range partitions of `parent` (ranges of `size` ids of `key`, named `prefix` and the
-- range's number in `digits` digits) from id 0 up to `upto`; returns how many it
-- created. Safe from several servers at once; waits at most 1 s for a lock (busy: next
-- time); skips a range whose ids the default partition already took (creating it would
-- fail, and the upkeep must never hold completions or reads).
CREATE FUNCTION payments_add_range_partitions(parent regclass, default_partition regclass, key text, prefix text,
                                              digits integer, size bigint, upto bigint) RETURNS integer
LANGUAGE plpgsql AS $$
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
END $$;

-- The history's upkeep, in terms of the function above (same ranges, same names).
CREATE OR REPLACE FUNCTION payment_history_add_partitions(ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    last_id bigint;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO last_id FROM payment_ids;
    RETURN payments_add_range_partitions('payment_history', 'payment_history_default', 'id', 'payment_history_p', 4,
                                         10000000, (last_id / 10000000 + ahead + 1) * 10000000);
END $$;

-- The ledger's, over the same span of ids: up to `ahead` ranges of ten million ids past
-- the last id given, in ranges of a million. Called in a transaction of its own (serve
-- each minute, prune, the migrations), never in the history's: each takes its table's
-- exclusive lock to add a partition, and holding one while waiting for the other could
-- deadlock with a reader of both.
CREATE FUNCTION ledger_entries_add_partitions(ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    last_id bigint;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO last_id FROM payment_ids;
    RETURN payments_add_range_partitions('ledger_entries', 'ledger_entries_default', 'job_id', 'ledger_entries_p', 5,
                                         1000000, (last_id / 10000000 + ahead + 1) * 10000000);
END $$;

SELECT ledger_entries_add_partitions(2);
-- The upkeep set a 1 s lock timeout for the rest of this transaction: the copy below
-- must not give up.
SELECT set_config('lock_timeout', '0', true);

-- The postings made so far, then the old table. (At ten million payments: twenty million
-- rows, 5 min here; the migration runs without a statement timeout. Apply it, as 0006,
-- with no server running: it holds the ledger meanwhile.)
INSERT INTO ledger_entries (id, job_id, side, account, amount_minor, currency, attempt, posted_at)
SELECT id, job_id, side, account, amount_minor, currency, attempt, posted_at FROM ledger_entries_unpartitioned;
DROP TABLE ledger_entries_unpartitioned;
-- Autovacuum analyses partitions, never the partitioned table itself: joins through
-- ledger_entries (the proofs, prune) would be planned without statistics.
ANALYZE ledger_entries;
