#!/usr/bin/env bash
# The restore drill: what failover cannot fix, fixed from backups while payments flow.
#   truncate   an operator's TRUNCATE of the books (payment_history, ledger_entries) at T;
#              the cluster restored to just before T
#   disk_lost  every data directory removed; the cluster restored to the last archived WAL
# Each under steady load (an enqueue of STREAM_BATCH payments every 0.3 s, each batch's
# acknowledgement time recorded outside the database) through `payments serve` and the
# external gateway. After each restore: serve restarts, open payments settle through
# lookups, `payments reconcile --adopt` re-creates the charged payments the restore lost,
# and the proofs run: every payment acknowledged before T (or before the last archived
# WAL) exists, every gateway charge belongs to exactly one succeeded payment, nothing is
# charged twice, the ledger balances. Prints the RPO (acknowledged payments missing before
# and after adoption) and the RTO (restore start to the first payment processed).
#   suites/restore/run.sh [--port-offset N] [SCENARIO...]
# Needs a running topology and a built binary (BIN, default release).
set -uo pipefail
PORT_OFFSET="${PORT_OFFSET:-0}"
if [ "${1:-}" = "--port-offset" ]; then PORT_OFFSET="$2"; shift 2; fi
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO"
eval "$("${TOPO[@]}" env)"
SUITE=restore
BIN="${BIN:-$REPO/.build/release/payments}"
. "$REPO/suites/lib/steady-load.sh"
LOAD_SECONDS="${LOAD_SECONDS:-8}"

cleanup() {
  load_cleanup
  [ -n "${LOAD_PID:-}" ] && kill "$LOAD_PID" 2>/dev/null
  # A drill that stopped half-way leaves the nodes down: bring back what can come back.
  if [ -n "${DRILL_STARTED:-}" ] && ! "${TOPO[@]}" status >/dev/null 2>&1; then
    "${TOPO[@]}" restore --to latest >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

psql_primary() { "${TOPO[@]}" psql super primary -tAc "$1" 2>/dev/null; }
epoch_of() { psql_primary "SELECT EXTRACT(EPOCH FROM '$1'::timestamptz)"; }

# Enqueues a batch every 0.3 s; each acknowledged batch is written with the time its
# COMMIT was answered: "INDEX EPOCH". A failed batch is retried under the same prefix.
start_load() { # prefix
  touch "$WORK/load.on"; : > "$WORK/load.acked"
  (
    i=0
    while [ -f "$WORK/load.on" ]; do
      if "$BIN" enqueue --count "$STREAM_BATCH" --key-prefix "$1-$i" --timeout 5 >/dev/null 2>>"$WORK/load.err"; then
        echo "$i $(date +%s.%N)" >> "$WORK/load.acked"; i=$((i + 1))
      fi
      sleep 0.3
    done
  ) &
  LOAD_PID=$!
}
stop_load() { rm -f "$WORK/load.on"; wait "$LOAD_PID" 2>/dev/null; LOAD_PID=""; }

# Acknowledged batches before EPOCH, and how many of their payments the database lacks.
acked_before() { awk -v t="$1" '$2 < t' "$WORK/load.acked" | wc -l | tr -d ' '; }
missing_before() { # prefix epoch
  local n=0 i have
  while read -r i _; do
    have=$(sql "SELECT count(*) FROM payment_keys WHERE idempotency_key LIKE '$1-$i-%'")
    n=$((n + STREAM_BATCH - ${have:-0}))
  done < <(awk -v t="$2" '$2 < t' "$WORK/load.acked")
  echo "$n"
}

# After a restore: serve again, open payments settled, lost charges adopted, proofs.
settle_and_prove() { # prefix, restore start (epoch), acknowledged-before epoch
  local p="$1" t_restore="$2" cutoff="$3"
  # The runbook's order: the lost charged payments re-created before any new payment is
  # taken, then serve (open payments settle through lookups), then new payments.
  local rpo_before; rpo_before=$(missing_before "$p" "$cutoff")
  RPO_BEFORE=$rpo_before
  # The drill's payments only: the topology may hold others, charged at other gateways.
  "$BIN" reconcile --gateway-url "$GW" --from "$DRILL_START" --adopt > "$WORK/reconcile.txt" 2>&1; local rc=$?
  grep -vE '^\s*20[0-9]{2}-|^\s+\S+\t' "$WORK/reconcile.txt" | sed 's/^/      /' | head -16
  start_serve || { log "serve did not start after the restore"; return 1; }
  # RTO: new payments taken and processed again (the restored queue may hold none).
  "$BIN" enqueue --count 10 --key-prefix "$p-after" >/dev/null 2>&1 && echo "after $(now)" >> "$WORK/load.acked"
  local rto; rto=$(seconds_until 120 probe_finished "$p-after") && rto=$(calc "$(now) - $t_restore" %.1f) || rto=none
  local adopted; adopted=$(sed -n 's/^adopted: \([0-9]*\).*/\1/p' "$WORK/reconcile.txt")
  local rpo_after; rpo_after=$(missing_before "$p" "$cutoff")
  # Every payment of the prefix now in the database must settle, charged once.
  local present; present=$(sql "SELECT count(*) FROM payment_keys WHERE idempotency_key LIKE '$p-%'")
  "$BIN" watch --key-prefix "$p" --count "$present" --gateway-journal "$JOURNAL" --reads-per-tick 0 --expect-replicas 0 \
    --timeout "${WATCH_TIMEOUT:-180}" > "$WORK/proof.txt" 2>/dev/null; local proof=$?
  grep -E '^(PASS|FAIL)' "$WORK/proof.txt" | sed 's/^/    /'
  log "RTO ${rto} s (restore start to the first new payment finished); RPO: $rpo_before acknowledged payments missing before adoption, $rpo_after after (adopted ${adopted:-0}); reconcile exit $rc"
  # The replicas are replicas still, after new payments were written (a recovery target
  # left in the settings would have promoted them at the first commit past it).
  local n in_recovery=ok
  for n in replica-1 replica-2; do
    [ "$("${TOPO[@]}" psql super "$n" -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ] || { in_recovery=bad; log "$n is not in recovery after the restore"; }
  done
  [ "$in_recovery" = ok ] || return 1
  DRILL_NOTES="RTO ${rto}s; acknowledged missing $rpo_before -> $rpo_after after adopting ${adopted:-0}"
  [ "$proof" = 0 ] && [ "$rc" = 0 ] && [ "$rto" != none ]
}
probe_finished() { [ "$(sql "SELECT count(*) FROM payment_history WHERE idempotency_key LIKE '$1-%'")" -gt 0 ]; }

scenario_truncate() {
  local p="r-trunc-$RANDOM" ok=PASS; FAULT_OK=1
  start_load "$p"; sleep "$LOAD_SECONDS"
  local t0; t0=$(now)
  "${TOPO[@]}" backup incr > "$WORK/backup.txt" 2>&1 || { ok=FAIL; log "backup under load failed: $(tail -2 "$WORK/backup.txt")"; }
  log "incremental backup under load: $(since "$t0") s"
  sleep 2
  local T; T=$(psql_primary "SELECT clock_timestamp()")
  sleep 0.5
  "${TOPO[@]}" psql super primary -c "TRUNCATE ledger_entries, payment_history" >/dev/null 2>&1 || fault_missing "the TRUNCATE did not run"
  [ "$(sql "SELECT count(*) FROM payment_history WHERE finished_at < '$T'")" = 0 ] || fault_missing "payments finished before T still in the history after the TRUNCATE"
  log "TRUNCATE ledger_entries, payment_history at $T (just after $T)"
  sleep 2
  stop_load; stop_serve
  local t_restore; t_restore=$(now)
  "${TOPO[@]}" restore --to "$T" 2>&1 | sed 's/^/    /' || ok=FAIL
  local cutoff; cutoff=$(epoch_of "$T")
  # Not a vacuous pass: the load must have been acknowledged before T.
  [ "$(acked_before "$cutoff")" -ge 5 ] || fault_missing "fewer than 5 batches acknowledged before T ($(acked_before "$cutoff"))"
  [ "$(sql "SELECT count(*) FROM payment_history")" -gt 0 ] || { ok=FAIL; log "the history is still empty after the restore"; }
  settle_and_prove "$p" "$t_restore" "$cutoff" || ok=FAIL
  # The restore itself, before adoption could hide anything: every payment acknowledged
  # before T is there.
  [ "$RPO_BEFORE" = 0 ] || { ok=FAIL; log "$RPO_BEFORE payments acknowledged before T were missing after the restore"; }
  record "TRUNCATE undone (to T)" "$ok" - "$DRILL_NOTES"
}

scenario_disk_lost() {
  local p="r-disk-$RANDOM" ok=PASS; FAULT_OK=1
  # Longer than archive_timeout: part of the load is archived before the disks go.
  start_load "$p"; sleep $((LOAD_SECONDS + 12))
  local s
  # Every node's data directory gone at once (SIGKILL first, as when a disk dies).
  for s in primary replica-1 replica-2; do
    local pid; pid=$(pid_of "$s") && kill -KILL "$pid" 2>/dev/null
    rm -rf "${TOPOLOGY_STATE_DIR:?}/$s/data"
  done
  local lost_at; lost_at=$(now)
  for s in primary replica-1 replica-2; do [ ! -e "$TOPOLOGY_STATE_DIR/$s/data" ] || fault_missing "$s's data is still there"; done
  log "every data directory removed"
  sleep 2
  stop_load; stop_serve
  local t_restore; t_restore=$(now)
  "${TOPO[@]}" restore --to latest 2>&1 | sed 's/^/    /' || ok=FAIL
  # What a client was told before the disks went is what may be missing (the last
  # archived segment bounds it): everything acknowledged more than archive_timeout and a
  # margin before the loss must be there, before adoption.
  local archived_by; archived_by=$(calc "$lost_at - 10 - 5")
  [ "$(acked_before "$archived_by")" -ge 5 ] || fault_missing "fewer than 5 batches acknowledged before $archived_by"
  local early_missing; early_missing=$(missing_before "$p" "$archived_by")
  [ "$early_missing" = 0 ] || { ok=FAIL; log "$early_missing payments acknowledged over 15 s before the loss are missing: the archive fell behind"; }
  settle_and_prove "$p" "$t_restore" "$lost_at" || ok=FAIL
  local gone; gone=$(missing_before "$p" "$lost_at")
  log "acknowledged and never charged, gone with the disks: $gone (their clients learn it from GET /v1/payments/{id} or by retrying)"
  record "disks lost (to latest)" "$ok" - "$DRILL_NOTES"
}

# ---------------------------------------------------------------- main
"$BIN" migrate >/dev/null || { echo "migrate failed (is the topology at offset $PORT_OFFSET up?)"; exit 1; }
DRILL_STARTED=1
DRILL_START="$(psql_primary "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")"
# A full backup to restore from (the scenarios add incremental ones under load).
t0=$(now); "${TOPO[@]}" backup full > "$WORK/backup-full.txt" 2>&1 || { cat "$WORK/backup-full.txt"; exit 1; }
echo "full backup before the drill: $(since "$t0") s"
run_scenarios restore "truncate disk_lost" "$@"
