-- A run's progress reads the run's keys, then its payments by their ids: it costs the
-- run's size, whatever the database holds and whatever the statistics say.
--
-- payments_by_key (migration 0006; what `payments watch` samples five times a second, and
-- the bench's and the demo's figures) joined the keys to payment_jobs and left the plan to
-- the statistics. With sound statistics it hashed every key and every row of the history
-- (the demo's 10,000 payments: 18 ms on a database of 30,000, growing with the database,
-- not the run); with the queue counted empty while it held the run (emptied and analyzed,
-- its pages kept, then refilled: the demo after `payments bench --quick`, 2026-12-07) it
-- read the queue's whole primary key once per payment, 27 s a sample.
--
-- Now it reads the run's keys as a range of their index (a parameter's LIKE cannot use
-- the index by itself: the pattern's literal head bounds the range, keys are in C order,
-- and LIKE still decides) for the lowest and highest id among them, then the queue and the
-- history partitions as that range of their primary keys, each row's key checked again
-- (another run's payments may have ids in between). No join is left to the statistics,
-- and with sequential scans off no plan but the indexes. A key whose characters after
-- the literal head begin with U+10FFFF (a noncharacter) falls outside the range.
-- ReadBatchTests.aRunsProgressReadsItsOwnPaymentsByKey holds the plan, made on emptied tables.
DROP FUNCTION payments_by_key(text);
CREATE FUNCTION payments_by_key(pattern text) RETURNS SETOF payment_jobs
LANGUAGE plpgsql STABLE SET enable_seqscan = off AS $$
DECLARE
    head text := substring(pattern FROM '^[^%_\\]*');
    lo bigint;
    hi bigint;
BEGIN
    SELECT min(k.payment_id), max(k.payment_id) INTO lo, hi FROM payment_keys k
    WHERE k.idempotency_key >= head AND k.idempotency_key < head || chr(1114111) AND k.idempotency_key LIKE pattern;
    RETURN QUERY SELECT j.* FROM payment_jobs j WHERE j.id BETWEEN lo AND hi AND j.idempotency_key LIKE pattern;
END $$;
