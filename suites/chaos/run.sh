#!/usr/bin/env bash
# The seeded chaos suite: three `payments serve` on one queue, the external payment
# gateway with its faults, clients POSTing with retries (same key until acknowledged) and
# bulk enqueues, while a schedule drawn from SEED kills, pauses and restarts serves,
# pgbouncer-write, the primary, a replica and the gateway. Afterwards, with every fault
# healed, the reconcilers settle what is left; then every process stops and the money is
# checked from the database and the gateway's own journal:
#   every acknowledged POST and enqueue exists; every job is terminal; each gateway charge
#   belongs to exactly one succeeded job (same amount and currency) with one debit and one
#   credit; no succeeded job lacks its charge; no key was charged twice; the ledger
#   balances per currency; and no payment failed without a decline (every fault here heals
#   well within the payments' retry budget, so any such failure is a liveness defect).
# Every fault is verified when applied (the process gone and back, the port refusing), and
# one that was not applied fails the run, as does a serve that did not start.
# A violation prints the seed and the schedule; the same SEED replays the same schedule and,
# on a database that has not run it (make chaos starts a fresh topology), the same keys, so
# the gateway's fault draws and the workers' jitter (functions of seed, key and attempt)
# replay too.
#   SEED=N (random by default)  MINUTES=M (2)  BIN=path/to/payments  PORT_OFFSET (100)
set -uo pipefail
PORT_OFFSET="${PORT_OFFSET:-100}"
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
BIN="${BIN:-$REPO/.build/debug/payments}"
[ -x "$BIN" ] || { echo "chaos: no binary at $BIN (swift build, or BIN=...)" >&2; exit 1; }
SEED="${SEED:-$((RANDOM * 32768 + RANDOM))}"
MINUTES="${MINUTES:-2}"
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "chaos: SEED must be a whole number" >&2; exit 64; }
[[ "$MINUTES" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "chaos: MINUTES must be a number" >&2; exit 64; }
RANDOM="$SEED"   # every draw below follows from the seed
eval "$("${TOPO[@]}" env)"

WORK="$(mktemp -d /tmp/payments-chaos.XXXXXX)"
PREFIX="chaos-$SEED"
# Keys are unique for ever: on a database that already ran this seed, a fresh prefix (the
# schedule replays; the per-key fault draws do not).
used="$(sql "SELECT count(*) FROM payment_keys WHERE idempotency_key LIKE '$PREFIX-%'")"
if [ "${used:-0}" -gt 0 ] 2>/dev/null; then
  PREFIX="chaos-$SEED-$(date +%s)"
  echo "[chaos] this database already ran seed $SEED: keys under $PREFIX (per-key faults will differ from the first run)" >&2
fi
JOURNAL="$WORK/gateway.jsonl"
GW_PORT=$((8090 + PORT_OFFSET))
SERVE_PORTS=($((8121 + PORT_OFFSET)) $((8122 + PORT_OFFSET)) $((8123 + PORT_OFFSET)))
LEASE=4
SCHEDULE="$WORK/schedule.txt"
declare -A SERVE_PIDS=()
log() { printf '[chaos %s] %s\n' "$(date +%T)" "$*" >&2; }

GATEWAY_ARGS=(--latency-ms 10 --jitter-ms 10 --lost-answer-rate 0.05 --error-rate 0.05 --decline-rate 0.02
              --hang-rate 0.005 --hang-seconds 10 --seed "$SEED")
start_gateway() { gateway_start "$BIN" "$GW_PORT" "$JOURNAL" "$WORK/gateway.log" "${GATEWAY_ARGS[@]}"; }
start_serve_n() {
  local n="$1"
  serve_start "$BIN" "${SERVE_PORTS[$n]}" "$WORK/serve-$n.log" --gateway-url "http://127.0.0.1:$GW_PORT" \
    --lease "$LEASE" --concurrency 300 --batch-size 100 --retry-base-ms 50 --retry-cap-ms 1000 --stats-interval 5 --log-level notice \
    || return 1
  SERVE_PIDS[$n]=$SERVE_PID
}

cleanup() {
  for pid in "${SERVE_PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; done
  [ -n "${GATEWAY_PID:-}" ] && kill -KILL "$GATEWAY_PID" 2>/dev/null
  for pid in "${LOAD_PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
  "${TOPO[@]}" psql admin-write -c RESUME >/dev/null 2>&1
  for s in primary replica-1 replica-2 pgbouncer-write; do "${TOPO[@]}" start "$s" >/dev/null 2>&1; done
}
trap cleanup EXIT

# ------------------------------------------------------------------ the schedule
# One fault every 5-10 s, drawn from the seed before anything runs, so it can be
# printed and replayed. The kinds come in seeded shuffled rounds, so every kind runs
# once before any runs twice.
FAULTS=(sigkill_serve sigstop_serve restart_pgbouncer_write restart_primary stop_replica restart_gateway
        sigkill_pgbouncer_write crash_primary)
for ((i = ${#FAULTS[@]} - 1; i > 0; i--)); do j=$((RANDOM % (i + 1))); tmp="${FAULTS[$i]}"; FAULTS[$i]="${FAULTS[$j]}"; FAULTS[$j]="$tmp"; done
: > "$SCHEDULE"
t=5; k=0; end=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 }')
while [ "$t" -lt $((end - 5)) ]; do
  f="${FAULTS[$((k % ${#FAULTS[@]}))]}"; k=$((k + 1)); n=$((RANDOM % 3)); hold=$((1 + RANDOM % 3))
  echo "$t $f $n $hold" >> "$SCHEDULE"
  t=$((t + 5 + RANDOM % 6))
done
log "seed $SEED, $MINUTES min, $(wc -l < "$SCHEDULE") faults; work dir $WORK"
sed 's/^/  at +/; s/ \([a-z_]*\) \([0-9]\) \([0-9]\)$/ s: \1 (serve \2, hold \3 s)/' "$SCHEDULE" >&2

# ------------------------------------------------------------------ start
"$BIN" migrate >/dev/null 2>&1 || { log "migrate failed"; exit 1; }
start_gateway || exit 1
for n in 0 1 2; do start_serve_n "$n" || exit 1; done

# ------------------------------------------------------------------ load
STOP_LOAD="$WORK/stop-load"
# Bulk enqueue: 200 payments per batch; a failed batch is retried with the same prefix
# (idempotent) until it is acknowledged.
enqueue_loop() {
  local i=0
  while [ ! -e "$STOP_LOAD" ]; do
    i=$((i + 1))
    until "$BIN" enqueue --count 200 --key-prefix "$PREFIX-e$i" >/dev/null 2>>"$WORK/enqueue.err"; do sleep 0.5; done
    echo 200 >> "$WORK/enqueued"
    sleep 1
  done
}
LOAD_PIDS=()
enqueue_loop & LOAD_PIDS+=($!)
for c in 1 2; do post_loop "$WORK" "$STOP_LOAD" "$PREFIX" "$c" "${SERVE_PORTS[@]}" & LOAD_PIDS+=($!); done

# ------------------------------------------------------------------ faults
fault() { echo "+$(( SECONDS - START ))s $*" >> "$WORK/applied"; log "$*"; }
# A fault that did not happen (or did not heal) fails the run: a schedule that ran no fault
# proves nothing.
missing() { echo "+$(( SECONDS - START ))s $*" >> "$WORK/missing"; log "NOT APPLIED: $*"; }
port_refuses() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PGB_WRITE_PORT=$((6432 + PORT_OFFSET)); PRIMARY_PORT=$((5432 + PORT_OFFSET))
START=$SECONDS
while read -r at f n hold; do
  while [ $((SECONDS - START)) -lt "$at" ]; do sleep 0.2; done
  case "$f" in
    sigkill_serve)
      fault "SIGKILL serve $n (restart after ${hold} s)"
      kill -KILL "${SERVE_PIDS[$n]}" 2>/dev/null; wait "${SERVE_PIDS[$n]}" 2>/dev/null
      kill -0 "${SERVE_PIDS[$n]}" 2>/dev/null && missing "serve $n survived SIGKILL"
      sleep "$hold"; start_serve_n "$n" || missing "serve $n did not restart" ;;
    sigstop_serve)
      # Longer than the lease: another serve takes its jobs, then it wakes up.
      fault "SIGSTOP serve $n for $((LEASE + hold)) s, then SIGCONT"
      kill -STOP "${SERVE_PIDS[$n]}" || missing "serve $n could not be stopped"
      sleep 0.2; grep -q '^State:.*T' "/proc/${SERVE_PIDS[$n]}/status" 2>/dev/null || missing "serve $n is not stopped"
      sleep $((LEASE + hold)); kill -CONT "${SERVE_PIDS[$n]}" ;;
    restart_pgbouncer_write)
      fault "pgbouncer-write stopped for ${hold} s"
      "${TOPO[@]}" stop pgbouncer-write >/dev/null 2>&1 || missing "pgbouncer-write did not stop"
      port_refuses "$PGB_WRITE_PORT" || missing "pgbouncer-write still accepts connections"
      sleep "$hold"; "${TOPO[@]}" start pgbouncer-write >/dev/null 2>&1 || missing "pgbouncer-write did not start again" ;;
    sigkill_pgbouncer_write)
      # While completions commit: a commit whose answer the pooler's death loses.
      fault "pgbouncer-write SIGKILL, back after ${hold} s"
      kill -KILL "$("${TOPO[@]}" pid pgbouncer-write)" 2>/dev/null || missing "pgbouncer-write had no process to kill"
      sleep 0.3; port_refuses "$PGB_WRITE_PORT" || missing "pgbouncer-write still accepts connections after SIGKILL"
      sleep "$hold"; "${TOPO[@]}" start pgbouncer-write >/dev/null 2>&1 || missing "pgbouncer-write did not start again" ;;
    restart_primary)
      fault "primary stopped for ${hold} s"
      "${TOPO[@]}" stop primary >/dev/null 2>&1 || missing "the primary did not stop"
      port_refuses "$PRIMARY_PORT" || missing "the primary still accepts connections"
      sleep "$hold"; "${TOPO[@]}" start primary >/dev/null 2>&1 || missing "the primary did not start again" ;;
    crash_primary)
      # Immediate shutdown (pg_ctl -m immediate: SIGQUIT to the postmaster): no checkpoint,
      # in-flight commits cut off, crash recovery at the next start.
      fault "primary crashed (immediate shutdown), back after ${hold} s"
      kill -QUIT "$("${TOPO[@]}" pid primary)" 2>/dev/null || missing "the primary had no postmaster to crash"
      for _ in $(seq 1 50); do port_refuses "$PRIMARY_PORT" && break; sleep 0.1; done
      port_refuses "$PRIMARY_PORT" || missing "the primary still accepts connections after an immediate shutdown"
      sleep "$hold"; "${TOPO[@]}" start primary >/dev/null 2>&1 || missing "the primary did not start again" ;;
    stop_replica)
      fault "replica-$((n % 2 + 1)) stopped for $((hold * 2)) s"
      "${TOPO[@]}" stop "replica-$((n % 2 + 1))" >/dev/null 2>&1 || missing "replica-$((n % 2 + 1)) did not stop"
      sleep $((hold * 2)); "${TOPO[@]}" start "replica-$((n % 2 + 1))" >/dev/null 2>&1 || missing "replica-$((n % 2 + 1)) did not start again" ;;
    restart_gateway)
      fault "gateway SIGKILL, back after ${hold} s"
      kill -KILL "$GATEWAY_PID" 2>/dev/null; wait "$GATEWAY_PID" 2>/dev/null
      kill -0 "$GATEWAY_PID" 2>/dev/null && missing "the gateway survived SIGKILL"
      sleep "$hold"; start_gateway || missing "the gateway did not restart" ;;
  esac
done < "$SCHEDULE"
while [ $((SECONDS - START)) -lt "$end" ]; do sleep 0.5; done

# ------------------------------------------------------------------ heal and settle
log "faults over; stopping the load (clients finish the key they hold)"
touch "$STOP_LOAD"
for pid in "${LOAD_PIDS[@]}"; do wait "$pid"; done
LOAD_PIDS=()
for n in 0 1 2; do kill -0 "${SERVE_PIDS[$n]}" 2>/dev/null || start_serve_n "$n" || missing "serve $n did not start for the settling"; done
log "waiting for every job to be terminal (reconciling jobs settle once no charge can land)"
settled=1; wait_drained "$PREFIX" 180 || settled=0
for n in 0 1 2; do serve_stop "${SERVE_PIDS[$n]}"; done
SERVE_PIDS=()
GATEWAY_STATS="$(curl -s "http://127.0.0.1:$GW_PORT/v1/stats" 2>/dev/null || echo unreachable)"
gateway_stop

# ------------------------------------------------------------------ the money
enqueued=$(( $(paste -sd+ "$WORK/enqueued" 2>/dev/null || echo 0) ))
posted=$(wc -l < "$WORK/posted" 2>/dev/null || echo 0)
expected=$((enqueued + posted))
verdict=0
log "acknowledged: $enqueued enqueued, $posted POSTed; checking"
"$BIN" watch --key-prefix "$PREFIX" --count "$expected" --gateway-journal "$JOURNAL" --reads-per-tick 0 \
  --expect-replicas 0 --timeout 10 > "$WORK/proof.txt" 2>/dev/null || verdict=1
grep -E '^(PASS|FAIL|INFO)' "$WORK/proof.txt" >&2
check_posted "$WORK/posted" >&2 || verdict=1
[ "$settled" = 1 ] || { echo "FAIL  every job settled within 180 s after the faults" >&2; verdict=1; }
states="$(sql "SELECT state || ' ' || count(*) FROM payment_jobs WHERE idempotency_key LIKE '$PREFIX-%' GROUP BY state ORDER BY 1" | paste -sd, -)"
reasons="$(sql "SELECT COALESCE(failure_reason, 'none') || ' ' || count(*) FROM payment_jobs WHERE idempotency_key LIKE '$PREFIX-%' AND state = 'failed' GROUP BY failure_reason ORDER BY 1" | paste -sd, -)"
# Liveness: every fault here heals within seconds, far inside the budget (an hour), so a
# payment failed for anything but a decline is a defect.
undeclined="$(sql "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE '$PREFIX-%' AND state = 'failed'
                   AND (failure_reason IS NULL OR failure_reason = 'budget_exhausted')")"
longest="$(sql "SELECT COALESCE(round(max(EXTRACT(EPOCH FROM finished_at - created_at))::numeric, 1), 0) FROM payment_jobs WHERE idempotency_key LIKE '$PREFIX-%'")"
reconciled="$(sql "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE '$PREFIX-%' AND last_error LIKE '%reconcil%'")"
if [ "${undeclined:-x}" = 0 ]; then echo "PASS  no payment failed without a decline" >&2
else echo "FAIL  no payment failed without a decline: ${undeclined:-unknown (query failed)} did" >&2; verdict=1; fi
applied=$(wc -l < "$WORK/applied" 2>/dev/null || echo 0)
if [ -s "$WORK/missing" ]; then
  echo "FAIL  every scheduled fault applied: $(wc -l < "$WORK/missing") were not:" >&2; sed 's/^/        /' "$WORK/missing" >&2; verdict=1
elif [ "$applied" = 0 ]; then echo "FAIL  every scheduled fault applied: none ran" >&2; verdict=1
else echo "PASS  every scheduled fault applied: $applied" >&2; fi
echo "INFO  jobs: $states; failed by reason: ${reasons:-none}; longest enqueue-to-finish ${longest} s; settled through reconciliation: $reconciled; POST retries: $(wc -l < "$WORK/post-retries" 2>/dev/null || echo 0)" >&2
echo "INFO  gateway since its last start: $GATEWAY_STATS" >&2
echo "INFO  faults applied:" >&2; sed 's/^/        /' "$WORK/applied" >&2
echo "SUMMARY seed=$SEED payments=$expected faults=$applied states=[$states] failed_without_decline=${undeclined:-?} longest_wait_s=$longest" >&2
if [ "$verdict" = 0 ]; then
  log "PASS: seed $SEED, $applied faults, $expected payments"
  rm -rf "$WORK"
else
  log "FAIL: seed $SEED (replay: SEED=$SEED MINUTES=$MINUTES make chaos); schedule and logs kept in $WORK"
  cat "$SCHEDULE" >&2
fi
exit "$verdict"
