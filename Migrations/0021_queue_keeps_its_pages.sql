-- Vacuum does not hand the queue's empty tail pages back to the file system. The queue
-- empties its newest pages all the time, and truncating them takes an ACCESS EXCLUSIVE
-- lock on payment_queue: every claim, intake and completion waits behind it, and the
-- standbys replay the same lock, stalling the status reads on them. The pages are
-- refilled within seconds anyway. Part of the half-load p99 change of 2026-12-06
-- (docs/benchmarks.md), measured together with the WAL settings, not on its own.
ALTER TABLE payment_queue SET (vacuum_truncate = false);
