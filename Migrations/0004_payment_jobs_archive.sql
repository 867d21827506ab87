-- Retention: failed and cancelled jobs past their retention period move here (payments
-- prune), out of the hot queue table. Succeeded jobs stay in payment_jobs: the ledger
-- references them.
CREATE TABLE payment_jobs_archive (LIKE payment_jobs INCLUDING DEFAULTS);
ALTER TABLE payment_jobs_archive ADD COLUMN archived_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE payment_jobs_archive ADD PRIMARY KEY (id);
CREATE INDEX payment_jobs_archive_key ON payment_jobs_archive (idempotency_key);
