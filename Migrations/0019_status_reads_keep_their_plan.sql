-- The status reads keep one plan per server connection, whatever the partitions.
--
-- PL/pgSQL caches each statement's plan, but the plan cache re-plans every call (a custom
-- plan) while a custom plan looks cheaper than the generic one. A generic plan of these
-- reads is costed over every partition of payment_history and ledger_entries (it prunes
-- them when it runs, by the id it is given), so once upkeep has made partitions ahead
-- (31 of the ledger here) the generic plan never wins and every status read was planned
-- anew: perf of a replica under pgbench showed the planner (expression_tree_walker,
-- copyObjectImpl, pg_strtok) on top, and payment_status ran at 4,436 calls/s on one
-- replica with 8 clients against 14,257 with the generic plan forced (2026-12-06).
--
-- A SET clause on a function applies for the call only and is restored after it, so it is
-- no session state: safe through PgBouncer's transaction pooling.
ALTER FUNCTION payment_status(bigint, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION payment_status_in_snapshot(bigint, text) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION payment_status_batch(bigint[], text[]) SET plan_cache_mode = force_generic_plan;
