-- The job queue. One row per payment; terminal rows stay until pruned.
CREATE TABLE payment_jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  text        NOT NULL,
    -- Canonical form of the request body, so a reused key with a different body is refused.
    request_fingerprint text     NOT NULL,
    amount_minor     bigint      NOT NULL CHECK (amount_minor > 0),
    currency         char(3)     NOT NULL REFERENCES currencies (code),
    debtor           text        NOT NULL CHECK (debtor ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    creditor         text        NOT NULL CHECK (creditor ~ '^[A-Za-z0-9_.:-]{1,64}$'),
    state            text        NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt          integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer     NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 50),
    priority         smallint    NOT NULL DEFAULT 100 CHECK (priority BETWEEN 0 AND 1000),
    run_at           timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    -- The gateway's charge id, once the charge is known to have been accepted.
    charge_id        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- When the current (or last) attempt was claimed: pickup latency = claimed_at - created_at.
    claimed_at       timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CONSTRAINT payment_jobs_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT payment_jobs_distinct_accounts CHECK (debtor <> creditor),
    CONSTRAINT payment_jobs_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- A running job always has a lease; a terminal job always has its finish time.
    CONSTRAINT payment_jobs_lease CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT payment_jobs_finished CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT payment_jobs_succeeded_charge CHECK ((state = 'succeeded') = (charge_id IS NOT NULL))
    -- No attempt <= max_attempts check: max_attempts bounds retries after *seen* transient
    -- failures; a job whose lease expired is always re-run, since asking the gateway again
    -- with the same idempotency key is the only way to learn whether it was charged.
) WITH (
    -- Room on each page for the queued -> running -> succeeded versions of a row.
    fillfactor = 70,
    -- The table churns: vacuum and analyse it after a small fraction changes.
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0
);

-- Only claimable rows: claiming cost does not grow with finished history.
CREATE INDEX payment_jobs_claimable ON payment_jobs (priority, run_at, id) WHERE state = 'queued';
-- Only running rows: the reaper finds expired leases without a scan.
CREATE INDEX payment_jobs_running_lease ON payment_jobs (lease_expires_at) WHERE state = 'running';
-- Retention: terminal jobs by finish time.
CREATE INDEX payment_jobs_finished_at ON payment_jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Terminal states never change (a database-level guarantee, not only the workers').
CREATE FUNCTION payment_jobs_terminal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state IN ('succeeded', 'failed', 'cancelled') THEN
        RAISE EXCEPTION 'payment job % is % and cannot change', OLD.id, OLD.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER payment_jobs_terminal_guard BEFORE UPDATE ON payment_jobs
    FOR EACH ROW WHEN (OLD.state IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION payment_jobs_terminal_guard();
