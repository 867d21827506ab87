-- The queue's indexes and constraints carry the queue's name.
--
-- 0006 renamed the table payment_jobs to payment_queue (payment_jobs is now the view of
-- the queue and the history) and left its indexes and constraints named payment_jobs_*:
-- a reader of a plan or of `\d payment_queue` looked for a table that is not there.
-- Every index (a constraint's index renames its constraint with it) and every other
-- constraint of payment_queue named payment_jobs_* becomes payment_queue_*.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = 'payment_queue'::regclass AND c.relname LIKE 'payment\_jobs\_%' LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', r.name, 'payment_queue_' || substr(r.name, length('payment_jobs_') + 1));
    END LOOP;
    FOR r IN SELECT conname AS name FROM pg_constraint
             WHERE conrelid = 'payment_queue'::regclass AND conname LIKE 'payment\_jobs\_%' LOOP
        EXECUTE format('ALTER TABLE payment_queue RENAME CONSTRAINT %I TO %I', r.name, 'payment_queue_' || substr(r.name, length('payment_jobs_') + 1));
    END LOOP;
END $$;
