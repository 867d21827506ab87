-- `reconciling`: the charge of this job may have happened and nobody knows yet (its answer
-- was lost on the last attempt, or its lease was lost too often). Such a job is never
-- recorded `failed` on a guess: a reconciler asks the gateway by idempotency key, once no
-- charge for it can still land, and then posts it (`succeeded`) or fails it.
ALTER TABLE payment_jobs DROP CONSTRAINT payment_jobs_state_check;
ALTER TABLE payment_jobs ADD CONSTRAINT payment_jobs_state_check
    CHECK (state IN ('queued', 'running', 'reconciling', 'succeeded', 'failed', 'cancelled')) NOT VALID;
ALTER TABLE payment_jobs VALIDATE CONSTRAINT payment_jobs_state_check;

-- How many times a worker lost this job's lease (it stopped, paused or lost the database
-- with the job in hand). Past a cap the job goes to `reconciling` instead of running again:
-- a job that kills its workers cannot loop.
ALTER TABLE payment_jobs ADD COLUMN lease_losses integer NOT NULL DEFAULT 0 CHECK (lease_losses >= 0);
ALTER TABLE payment_jobs_archive ADD COLUMN lease_losses integer NOT NULL DEFAULT 0;

-- The reconciler's work list: few rows, found without a scan.
CREATE INDEX payment_jobs_reconciling ON payment_jobs (run_at) WHERE state = 'reconciling';

-- The server enforces a statement timeout for the application role as well as the client,
-- so a statement whose client gave up (a claim stuck behind a restarting pooler) is ended
-- by PostgreSQL too. Workers set a tighter one per transaction; migrations and prune
-- lift it for their own transactions.
DO $$ BEGIN
    EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', current_user, '60s');
END $$;
