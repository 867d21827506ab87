#!/usr/bin/env bash
# The fault suite: real failures against the real local topology while `payments serve`
# processes a steady stream of payments and clients read status. After each scenario the
# money invariants are checked (payments watch). Ends with a table of scenarios.
#   suites/faults/run.sh [--port-offset N] [SCENARIO...]
# Needs a running topology (make test starts one) and a built binary (BIN, default release).
set -uo pipefail
PORT_OFFSET="${PORT_OFFSET:-0}"
if [ "${1:-}" = "--port-offset" ]; then PORT_OFFSET="$2"; shift 2; fi
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO"
eval "$("${TOPO[@]}" env)"
BIN="${BIN:-$REPO/.build/release/payments}"
PORT=$((8080 + PORT_OFFSET + 60))
API="http://127.0.0.1:$PORT"
WORK="$(mktemp -d /tmp/payments-faults.XXXXXX)"
JOURNAL="$WORK/gateway.jsonl"
SERVE_ARGS=(--gateway-latency-ms 20 --concurrency 500 --batch-size 200 --lease 4 --gateway-transient-failure-rate 0.02
            --retry-base-ms 50 --retry-cap-ms 1000 --gateway-journal "$JOURNAL" --stats-interval 2)
RESULTS=()
SERVE_PID="" STREAM_PID="" READER_PID=""

log() { echo "    $*"; }
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
succeeded() { sql "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE '$1-%' AND state = 'succeeded'"; }

start_serve() { serve_start "$BIN" "$PORT" "$WORK/serve.log" "${SERVE_ARGS[@]}" "$@"; }
stop_serve() { serve_stop; }

# A steady stream: 100 payments every 0.3 s; failed enqueues (database away) are counted and retried.
start_stream() { # prefix
  (
    i=0
    while [ -f "$WORK/stream.on" ]; do
      # A failed enqueue is retried with the same prefix (idempotent), so every
      # acknowledged batch of 100 is counted once, here, outside the database.
      if "$BIN" enqueue --count 100 --key-prefix "$1-$i" >/dev/null 2>>"$WORK/stream.err"; then
        echo "$i" >> "$WORK/stream.acked"; i=$((i + 1))
      else echo x >> "$WORK/stream.fail"; fi
      sleep 0.3
    done
  ) &
  STREAM_PID=$!
}
# Status reads through the API: each failed read is retried once; both outcomes are counted.
start_reader() { # prefix
  (
    while [ -f "$WORK/stream.on" ]; do
      id=$(sql "SELECT id FROM payment_jobs WHERE idempotency_key LIKE '$1-%' ORDER BY random() LIMIT 1")
      [ -n "$id" ] || { sleep 0.1; continue; }
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$API/v1/payments/$id")
      if [ "$code" != 200 ]; then
        echo "$code" >> "$WORK/reads.failed"
        sleep 0.2
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$API/v1/payments/$id")
        [ "$code" = 200 ] || echo "$code" >> "$WORK/reads.lost"
      fi
      echo ok >> "$WORK/reads.done"
      sleep 0.05
    done
  ) &
  READER_PID=$!
}
begin() { # prefix
  rm -f "$WORK"/stream.* "$WORK"/reads.*
  touch "$WORK/stream.on"
  start_stream "$1"
  start_reader "$1"
  sleep 2
}
end_traffic() {
  rm -f "$WORK/stream.on"
  wait "$STREAM_PID" "$READER_PID" 2>/dev/null
}
count() { [ -f "$1" ] && wc -l < "$1" | tr -d ' ' || echo 0; }

# Waits for the scenario's jobs to finish, then proves the invariants.
# Waits for the scenario's jobs to finish, then proves the invariants. The expected
# number of jobs comes from what clients were told (acknowledged enqueues and POSTs),
# not from the database under test, so a lost acknowledged write fails the proof.
prove() { # prefix [extra acknowledged jobs]
  local expected=$(( 100 * $(count "$WORK/stream.acked") + ${2:-0} ))
  "$BIN" watch --key-prefix "$1" --count "$expected" \
    --gateway-journal "$JOURNAL" --reads-per-tick 0 --expect-replicas 0 --timeout 120 > "$WORK/proof.txt" 2>/dev/null
  local rc=$?
  grep -E '^(PASS|FAIL)' "$WORK/proof.txt" | sed 's/^/    /'
  return $rc
}
record() { # name, verdict, recovery, notes
  RESULTS+=("$(printf '%-28s %-5s %-10s %s' "$1" "$2" "$3" "$4")")
  if [ "$2" != PASS ]; then log "serve stats: $(curl -s --max-time 5 "$API/v1/stats" | head -c 1500)"; fi
}
wait_for() { # seconds, command... -> prints elapsed seconds, fails on timeout
  local t0; t0=$(now)
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.1; done
  since "$t0"
}
progressed_since() { [ "$(succeeded "$1")" -gt "$2" ]; }

# ---------------------------------------------------------------- scenarios
scenario_replica_restart() {
  local p="f-replica-$RANDOM"; begin "$p"
  "${TOPO[@]}" stop replica-1; log "replica-1 stopped"
  sleep 3
  local lsn; lsn=$("${TOPO[@]}" psql super -tAc "SELECT pg_current_wal_lsn()")
  local t0; t0=$(now)
  "${TOPO[@]}" start replica-1
  caught_up() { [ "$("${TOPO[@]}" psql super -tAc "SELECT count(*) FROM pg_stat_replication WHERE application_name='replica-1' AND state='streaming' AND replay_lsn >= '$lsn'")" = 1 ]; }
  local rec; rec=$(wait_for 60 caught_up) || rec=""
  end_traffic
  local failed lost done; failed=$(count "$WORK/reads.failed"); lost=$(count "$WORK/reads.lost"); done=$(count "$WORK/reads.done")
  log "reads: $done, failed first try: $failed, failed after one retry: $lost; replica-1 caught up ${rec:-never} s after restart"
  local ok=PASS
  [ -n "$rec" ] && [ "$lost" = 0 ] || ok=FAIL
  prove "$p" || ok=FAIL
  record "replica stopped/restarted" "$ok" "${rec:-none}s" "reads $done, failed $failed (retried ok), lost $lost; jobs $(succeeded "$p")"
}

scenario_pgbouncer_write_restart() {
  local p="f-pgbw-$RANDOM"; begin "$p"
  local before; before=$(succeeded "$p")
  "${TOPO[@]}" restart pgbouncer-write; log "pgbouncer-write restarted"
  local rec; rec=$(wait_for 60 progressed_since "$p" "$before") || rec=""
  sleep 2; end_traffic
  local ok=PASS; [ -n "$rec" ] || ok=FAIL
  kill -0 "$SERVE_PID" 2>/dev/null || { ok=FAIL; log "serve died"; }
  prove "$p" || ok=FAIL
  record "pgbouncer-write restarted" "$ok" "${rec:-none}s" "enqueue failures $(count "$WORK/stream.fail"); jobs $(succeeded "$p")"
}

scenario_primary_restart() {
  local p="f-primary-$RANDOM"; begin "$p"
  "${TOPO[@]}" stop primary; log "primary stopped (fast shutdown)"
  sleep 1
  local ready; ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$API/readyz")
  log "/readyz while the primary is away: $ready"
  sleep 2
  local t0; t0=$(now)
  "${TOPO[@]}" start primary; log "primary started"
  # Recovery: from the primary's return until serve completes jobs again.
  local before=""
  until [[ "$before" =~ ^[0-9]+$ ]]; do before=$(succeeded "$p"); done
  local rec; rec=$(wait_for 60 progressed_since "$p" "$before") || rec=""
  [ -n "$rec" ] && rec=$(since "$t0")
  sleep 2; end_traffic
  local ok=PASS; [ -n "$rec" ] && [ "$ready" = 503 ] || ok=FAIL
  kill -0 "$SERVE_PID" 2>/dev/null || { ok=FAIL; log "serve died"; }
  prove "$p" || ok=FAIL
  record "primary restarted" "$ok" "${rec:-none}s" "readyz during outage $ready; enqueue failures $(count "$WORK/stream.fail"); jobs $(succeeded "$p")"
}

scenario_serve_sigkill() {
  local p="f-kill-$RANDOM"; begin "$p"
  # A slow gateway and a burst, so the kill surely lands while the server holds jobs.
  stop_serve; start_serve --gateway-latency-ms 300
  local burst=0
  "$BIN" enqueue --count 2000 --key-prefix "$p-burst" >/dev/null 2>&1 && burst=2000
  holding() { [ "$(sql "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE '$p-%' AND state = 'running'")" -gt 0 ]; }
  wait_for 10 holding >/dev/null
  kill -KILL "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null; SERVE_PID=""
  local stranded; stranded=$(sql "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE '$p-%' AND state = 'running'")
  local ids; ids=$(sql "SELECT COALESCE(string_agg(id::text, ','), '0') FROM payment_jobs WHERE idempotency_key LIKE '$p-%' AND state = 'running'")
  log "serve killed with SIGKILL, $stranded jobs left running (ids ${ids:0:40}...)"
  local t0; t0=$(now)
  start_serve
  # Recovery: until every job the killed server held is terminal (lease 4 s, then reclaimed).
  stranded_done() { [ "$(sql "SELECT count(*) FROM payment_jobs WHERE id IN ($ids) AND state NOT IN ('succeeded', 'failed')")" = 0 ]; }
  local rec; rec=$(wait_for 60 stranded_done) || rec=""
  end_traffic
  local ok=PASS; [ -n "$rec" ] && [ "$stranded" -gt 0 ] || ok=FAIL
  prove "$p" "$burst" || ok=FAIL
  record "serve SIGKILL + new serve" "$ok" "${rec:-none}s" "$stranded stranded jobs reclaimed after lease expiry; jobs $(succeeded "$p")"
}

scenario_replication_paused() {
  local p="f-pause-$RANDOM"; begin "$p"
  local n
  for n in replica-1 replica-2; do "${TOPO[@]}" psql super "$n" -tAc "SELECT pg_wal_replay_pause()" >/dev/null; done
  log "replay paused on both replicas"
  sleep 1
  local own=0 own_primary=0 acked_posts=0 i
  for i in $(seq 1 20); do
    local h; h=$(curl -s -D - -o "$WORK/post.json" -X POST "$API/v1/payments" -H 'Content-Type: application/json' \
      -H "Idempotency-Key: $p-api-$i" -d '{"amount_minor": 500, "currency": "EUR", "debtor": "acct_a", "creditor": "acct_b"}')
    echo "$h" | head -1 | grep -qE ' 20[01] ' && acked_posts=$((acked_posts + 1))
    local token id; token=$(echo "$h" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-freshness-token" {print $2}')
    id=$(python3 -c "import json; print(json.load(open('$WORK/post.json'))['id'])")
    local r; r=$(curl -s -D - -o /dev/null -w '%{http_code}' -H "X-Freshness-Token: $token" "$API/v1/payments/$id" | tr -d '\r')
    echo "$r" | grep -q '^200$' && own=$((own + 1))
    echo "$r" | grep -qi '^x-read-source: primary' && own_primary=$((own_primary + 1))
  done
  local old lag; old=$(sql "SELECT min(id) FROM payment_jobs WHERE idempotency_key LIKE '$p-%'")
  sleep 1
  lag=$(curl -s -D - -o /dev/null "$API/v1/payments/$old" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-replica-lag-seconds" {print $2}')
  log "own writes read back: $own/20, from the primary: $own_primary/20; a read without a token reports lag ${lag}s"
  for n in replica-1 replica-2; do "${TOPO[@]}" psql super "$n" -tAc "SELECT pg_wal_replay_resume()" >/dev/null; done
  local t0; t0=$(now)
  caught() { [ "$("${TOPO[@]}" psql super -tAc "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn >= pg_current_wal_lsn() - 1000000")" = 2 ]; }
  local rec; rec=$(wait_for 60 caught) || rec=""
  end_traffic
  local ok=PASS
  [ "$own" = 20 ] && [ "$own_primary" = 20 ] && python3 -c "import sys; sys.exit(0 if float('${lag:-0}') > 0 else 1)" || ok=FAIL
  prove "$p" "$acked_posts" || ok=FAIL
  record "replication paused" "$ok" "${rec:-none}s" "read-your-writes $own/20 (primary $own_primary); lag reported ${lag:-?}s"
}

scenario_haproxy_down() {
  local p="f-haproxy-$RANDOM"; begin "$p"
  local id; id=$(sql "SELECT min(id) FROM payment_jobs WHERE idempotency_key LIKE '$p-%'")
  "${TOPO[@]}" stop haproxy; log "haproxy stopped: the read path is down"
  sleep 1
  local before; before=$(succeeded "$p")
  local h; h=$(curl -s -D - -o /dev/null -w '%{http_code}' "$API/v1/payments/$id" | tr -d '\r')
  local fallback=0
  echo "$h" | grep -q '^200$' && echo "$h" | grep -qi '^x-read-fallback:' && echo "$h" | grep -qi '^x-read-source: primary' && fallback=1
  log "read with fallback on: $(echo "$h" | tail -1), X-Read-Fallback present: $fallback"
  # The same, with the fallback switched off: a clear 503.
  local off_port=$((PORT + 1))
  local main_pid="$SERVE_PID"
  serve_start "$BIN" "$off_port" "$WORK/serve-nofallback.log" --no-workers --no-read-fallback
  local off_pid="$SERVE_PID"; SERVE_PID="$main_pid"
  local body code; body=$(curl -s -w '\n%{http_code}' --max-time 30 "http://127.0.0.1:$off_port/v1/payments/$id"); code=$(echo "$body" | tail -1)
  serve_stop "$off_pid"
  log "read with fallback off: $code $(echo "$body" | head -1 | cut -c1-120)"
  sleep 2
  local processing=0; progressed_since "$p" "$before" && processing=1
  local t0; t0=$(now)
  "${TOPO[@]}" start haproxy
  on_replica() { curl -s -D - -o /dev/null "$API/v1/payments/$id" | tr -d '\r' | grep -qi '^x-read-source: replica'; }
  local rec; rec=$(wait_for 60 on_replica) || rec=""
  end_traffic
  local ok=PASS
  [ "$fallback" = 1 ] && [ "$code" = 503 ] && echo "$body" | grep -q '"code"' && [ "$processing" = 1 ] && [ -n "$rec" ] || ok=FAIL
  prove "$p" || ok=FAIL
  record "haproxy stopped" "$ok" "${rec:-none}s" "fallback read ok $fallback; fallback off -> $code; processing went on $processing; enqueue failures $(count "$WORK/stream.fail")"
}

# ---------------------------------------------------------------- main
"$BIN" migrate >/dev/null || { echo "migrate failed"; exit 1; }
start_serve || exit 1
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(replica_restart pgbouncer_write_restart primary_restart serve_sigkill replication_paused haproxy_down)
for s in "${scenarios[@]}"; do
  echo "--- $s"
  "scenario_$s"
done
rm -f "$WORK/stream.on"
stop_serve; serve_rc=$?
[ "$serve_rc" = 0 ] || RESULTS+=("$(printf '%-28s %-5s %-10s %s' "serve graceful exit" FAIL "-" "exit $serve_rc")")
echo
printf '%-28s %-5s %-10s %s\n' SCENARIO RESULT RECOVERY NOTES
printf '%s\n' "${RESULTS[@]}"
passed=$(printf '%s\n' "${RESULTS[@]}" | awk '$0 ~ / PASS / {n++} END {print n+0}')
failed=$(printf '%s\n' "${RESULTS[@]}" | awk '$0 ~ / FAIL / {n++} END {print n+0}')
if [ "$failed" != 0 ]; then
  echo "pgbouncer-write pools:"; "${TOPO[@]}" psql admin-write -c "SHOW POOLS" 2>&1 | head -5
  echo "serve log (last lines; whole logs kept in $WORK):"; grep -v "read path failed" "$WORK/serve.log" | tail -60
else
  rm -rf "$WORK"
fi
echo "faults: $passed passed, $failed failed"
[ "$failed" = 0 ]
