#!/usr/bin/env bash
# The restore drill: what failover cannot fix, fixed from backups while payments flow.
#   truncate   an operator's TRUNCATE of the books (payment_history, ledger_entries) at T;
#              the cluster restored to just before T
#   disk_lost  every data directory removed; the cluster restored to the last archived WAL
#   archive_gap  the same with a segment removed from the archive: the restore says it
#              stopped short (exit 3), adoption brings back what was charged after the hole
# On the HA topology (TOPOLOGY_HA=1, as scripts/run-ha runs it) the truncate scenario
# restores through Patroni: the cluster re-bootstrapped from the backup on one node, the
# two others cloned from it.
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
HA="${TOPOLOGY_HA:-0}"
# The node that writes, for `topology psql super`: the seed's primary, or (no name) the HA leader.
WRITER=(primary); [ "$HA" = 1 ] && { WRITER=(); . "$REPO/scripts/ha-lib.sh"; }
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

psql_primary() { "${TOPO[@]}" psql super "${WRITER[@]}" -tAc "$1" 2>/dev/null; }
replica_nodes() { if [ "$HA" = 1 ]; then ha_replicas; else echo replica-1 replica-2; fi; }
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
  local n in_recovery=ok replicas; replicas=$(replica_nodes)
  [ "$(echo "$replicas" | wc -w)" = 2 ] || { in_recovery=bad; log "two replicas expected after the restore, found: $replicas"; }
  for n in $replicas; do
    [ "$("${TOPO[@]}" psql super "$n" -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ] || { in_recovery=bad; log "$n is not in recovery after the restore"; }
  done
  if [ "$HA" = 1 ]; then
    local leader_now; leader_now=$(ha_leader)
    [ -n "$leader_now" ] && [ "$(ha_timeline)" -gt "${TIMELINE_BEFORE:-0}" ] \
      || { in_recovery=bad; log "after the restore: leader '$leader_now', timeline $(ha_timeline) (before: ${TIMELINE_BEFORE:-?})"; }
  fi
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
  [ "$HA" = 1 ] && TIMELINE_BEFORE=$(ha_timeline)
  "${TOPO[@]}" psql super "${WRITER[@]}" -c "TRUNCATE ledger_entries, payment_history" >/dev/null 2>&1 || fault_missing "the TRUNCATE did not run"
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
  record "TRUNCATE undone (to T)$([ "$HA" = 1 ] && echo ', HA through Patroni')" "$ok" - "$DRILL_NOTES"
}

# Every node's data directory gone at once (SIGKILL first, as when a disk dies); LOST_AT.
lose_every_disk() {
  local s pid
  for s in primary replica-1 replica-2; do
    pid=$(pid_of "$s") && kill -KILL "$pid" 2>/dev/null
    rm -rf "${TOPOLOGY_STATE_DIR:?}/$s/data"
  done
  LOST_AT=$(now)
  for s in primary replica-1 replica-2; do [ ! -e "$TOPOLOGY_STATE_DIR/$s/data" ] || fault_missing "$s's data is still there"; done
  log "every data directory removed"
}

scenario_disk_lost() {
  local p="r-disk-$RANDOM" ok=PASS; FAULT_OK=1
  [ "$HA" = 0 ] || { record "disks lost (to latest)" FAIL - "the seed topology's scenario (run it without TOPOLOGY_HA)"; return; }
  # Longer than archive_timeout: part of the load is archived before the disks go.
  start_load "$p"; sleep $((LOAD_SECONDS + 12))
  lose_every_disk; local lost_at=$LOST_AT
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

# A segment lost from the archive (a repository damaged, a segment never pushed): a
# restore to latest cannot replay past the hole. It must say so (exit 3, the segment
# named) rather than promote quietly; what came after the hole comes back as far as the
# provider's charges reach (adoption), and the proofs still hold.
scenario_archive_gap() {
  local p="r-gap-$RANDOM" ok=PASS; FAULT_OK=1
  [ "$HA" = 0 ] || { record "archive gap (to latest)" FAIL - "the seed topology's scenario (run it without TOPOLOGY_HA)"; return; }
  # At least two segments past the last backup: the load's, switched twice (and archived
  # within a second each, asynchronously) rather than waiting for archive_timeout.
  start_load "$p"; sleep "$LOAD_SECONDS"
  psql_primary "SELECT pg_switch_wal()" >/dev/null; sleep 3
  psql_primary "SELECT pg_switch_wal()" >/dev/null; sleep 3
  lose_every_disk; local lost_at=$LOST_AT
  # The first segment archived after the last backup's end goes: not the last one, so
  # the archive holds segments past the hole.
  local stop; stop=$("${TOPO[@]}" backups 2>/dev/null | awk '$NF ~ /^[0-9A-F]+\.\.[0-9A-F]+$/ { w = $NF } END { sub(/.*\.\./, "", w); print w }')
  local segments; segments=$(find "$BACKUP_REPO_DIR/archive" -type f -name '[0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]*-*' \
    | awk -F/ '{ print substr($NF, 1, 24) " " $0 }' | awk -v stop="$stop" 'substr($1, 9) > substr(stop, 9)' | sort)
  if [ "$(echo "$segments" | grep -c .)" -lt 2 ]; then
    fault_missing "fewer than two segments archived after the last backup ($stop): no hole to make"
  else
    local hole; hole=$(echo "$segments" | head -1)
    rm -f "${hole#* }"; log "removed segment ${hole%% *} from the archive ($(echo "$segments" | grep -c .) archived after the backup's $stop)"
    [ ! -e "${hole#* }" ] || fault_missing "the segment is still in the archive"
  fi
  sleep 2
  stop_load; stop_serve
  local t_restore; t_restore=$(now)
  "${TOPO[@]}" restore --to latest > "$WORK/restore.txt" 2>&1; local rc=$?
  sed 's/^/    /' "$WORK/restore.txt"
  [ "$rc" = 3 ] && grep -q "a segment is missing" "$WORK/restore.txt" \
    || { ok=FAIL; log "restore to latest over a hole exited $rc without naming the missing segment"; }
  settle_and_prove "$p" "$t_restore" "$lost_at" || ok=FAIL
  record "archive gap (to latest)" "$ok" - "restore exit $rc; $DRILL_NOTES"
}
# ---------------------------------------------------------------- main
"$BIN" migrate >/dev/null || { echo "migrate failed (is the topology at offset $PORT_OFFSET up?)"; exit 1; }
DRILL_STARTED=1
DRILL_START="$(psql_primary "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")"
# A full backup to restore from (the scenarios add incremental ones under load).
t0=$(now); "${TOPO[@]}" backup full > "$WORK/backup-full.txt" 2>&1 || { cat "$WORK/backup-full.txt"; exit 1; }
echo "full backup before the drill: $(since "$t0") s"
if [ "$HA" = 1 ]; then run_scenarios restore-ha "truncate" "$@"; else run_scenarios restore "truncate disk_lost archive_gap" "$@"; fi
