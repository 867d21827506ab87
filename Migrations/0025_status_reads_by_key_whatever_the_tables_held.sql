-- The status reads read each payment by its key, whatever the tables held when their plan
-- was made.
--
-- Since migration 0019 the status reads run one generic plan per server connection, made
-- at the connection's first read and kept for its life. Made on a fresh database (every
-- table empty, no pages), that plan read the queue, each history partition, the archive and
-- each ledger partition in full for each payment asked (Seq Scan, Filter: id = u.p): the
-- cheapest plan for empty tables, kept while they grew to millions of rows, until the
-- pooler closed that server connection. With sequential scans off, the only plans left read
-- each table through the index on the payment's id (its primary key; the ledger's is
-- (job_id, side)).
-- ReadBatchTests.statusReadsReadByKeyWhateverTheTablesHeldWhenPlanned holds the plans,
-- made on emptied tables.
--
-- payment_status itself only calls payment_status_in_snapshot. Like 0019's, a SET clause
-- applies for the call only: no session state through PgBouncer's transaction pooling.
ALTER FUNCTION payment_status_in_snapshot(bigint, text) SET enable_seqscan = off;
ALTER FUNCTION payment_status_batch(bigint[], text[]) SET enable_seqscan = off;
