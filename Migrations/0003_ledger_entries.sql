-- Double-entry postings: one debit and one credit per succeeded payment.
CREATE TABLE ledger_entries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       bigint      NOT NULL REFERENCES payment_jobs (id),
    side         text        NOT NULL CHECK (side IN ('debit', 'credit')),
    account      text        NOT NULL,
    -- Signed: debits negative, credits positive, so a balanced ledger sums to zero.
    amount_minor bigint      NOT NULL,
    -- The job's currency, already checked against `currencies` when the job was
    -- inserted; a second foreign key here would cost a lookup per posting.
    currency     char(3)     NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    attempt      integer     NOT NULL,
    posted_at    timestamptz NOT NULL DEFAULT now(),
    -- The database itself refuses a second posting of the same payment.
    CONSTRAINT ledger_entries_one_per_side UNIQUE (job_id, side),
    CONSTRAINT ledger_entries_sign CHECK ((side = 'debit' AND amount_minor < 0) OR (side = 'credit' AND amount_minor > 0))
);

CREATE INDEX ledger_entries_account ON ledger_entries (account, posted_at);
