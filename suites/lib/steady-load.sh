# shellcheck shell=bash
# The steady payment load the fault suites (suites/faults, suites/ha) put on a topology,
# and what they prove after each fault. Source after scripts/lib.sh with TOPO set and
# the topology's env evaluated; BIN is the payments binary. A suite defines its
# scenario_NAME functions, its cleanup (which calls load_cleanup), then calls
# run_scenarios LABEL "DEFAULT SCENARIOS" "$@".
#   begin PREFIX: stream of enqueues + a POSTing client + a status reader, through serve
#   end_traffic: stops them (pending acknowledgements finish first)
#   prove PREFIX [EXTRA]: every acknowledged job terminal, charged once, posted once (payments watch)
#   record NAME VERDICT RECOVERY NOTES: the scenario's one verdict

BIN="${BIN:-$REPO/.build/release/payments}"
PORT=$((8080 + PORT_OFFSET + 60))
API="http://127.0.0.1:$PORT"
GW_PORT=$((8091 + PORT_OFFSET))   # beside the demo's and the chaos suite's gateway (8090)
GW="http://127.0.0.1:$GW_PORT"
WORK="$(mktemp -d "/tmp/payments-${SUITE:-faults}.XXXXXX")"
JOURNAL="$WORK/gateway.jsonl"
GATEWAY_ARGS=(--latency-ms 20 --jitter-ms 10 --error-rate 0.02 --lost-answer-rate 0.02 --decline-rate 0.01 --seed 11)
SERVE_ARGS=(--gateway-url "$GW" --concurrency 500 --batch-size 200 --lease 4
            --retry-base-ms 50 --retry-cap-ms 1000 --stats-interval 2)
RESULTS=() VERDICTS=()
SERVE_PID="" STREAM_PID="" READER_PID="" POSTER_PID="" GATEWAY_PID=""

# Stops the load and the processes it started (the suite's own cleanup calls this first).
load_cleanup() {
  rm -f "$WORK/stream.on"
  for pid in "$STREAM_PID" "$READER_PID" "$POSTER_PID"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done
  [ -n "$SERVE_PID" ] && kill -KILL "$SERVE_PID" 2>/dev/null
  [ -n "$GATEWAY_PID" ] && kill -KILL "$GATEWAY_PID" 2>/dev/null
}

log() { echo "    $*"; }
now() { date +%s.%N; }
# Fractional arithmetic (bash has integers only), in awk: calc EXPR [FORMAT] prints it
# (three decimals unless FORMAT says otherwise), holds EXPR succeeds when it is true.
calc() { awk "BEGIN { printf \"${2:-%.3f}\\n\", $1 }"; }
holds() { awk "BEGIN { exit !($1) }"; }
since() { calc "$(now) - $1" %.1f; }
succeeded() { sql "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE '$1-%' AND state = 'succeeded'"; }

start_serve() { serve_start "$BIN" "$PORT" "$WORK/serve.log" "${SERVE_ARGS[@]}" "$@"; }
# A graceful stop must be clean: SIGTERM, exit 0 within 30 s (serve_stop SIGKILLs after).
UNCLEAN_STOPS=0
stop_serve() {
  local rc=0; serve_stop || rc=$?
  [ "$rc" = 0 ] || { log "SERVE DID NOT STOP CLEANLY: exit $rc"; UNCLEAN_STOPS=$((UNCLEAN_STOPS + 1)); }
  return "$rc"
}
# (Re)starts the gateway; later flags override GATEWAY_ARGS. Its journal persists.
restart_gateway() {
  gateway_stop
  gateway_start "$BIN" "$GW_PORT" "$JOURNAL" "$WORK/gateway.log" "${GATEWAY_ARGS[@]}" "$@"
}
gateway_stat() { curl -s --max-time 5 "$GW/v1/stats" | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))" 2>/dev/null || echo 0; }
worker_stat() { curl -s --max-time 5 "$API/v1/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['worker']['$1'])" 2>/dev/null || echo 0; }
pid_of() { "${TOPO[@]}" pid "$1" 2>/dev/null; }
exited() { ! pid_alive "$1"; }
# A fault that did not happen fails its scenario: FAULT_OK=0 and a line saying why.
FAULT_OK=1
fault_missing() { FAULT_OK=0; log "FAULT NOT INJECTED: $*"; }
# So does a suite's own measurement that was not taken (suites/ha: a probe that died or
# took too few samples reads as no failed write and no split brain): PROBES_OK=0.
PROBES_OK=1

# A steady stream: STREAM_BATCH (50) payments every 0.3 s, about half of what a debug
# build charges through the external gateway per second, so a scenario's backlog drains;
# failed enqueues (database away) are counted and retried.
STREAM_BATCH="${STREAM_BATCH:-50}"
start_stream() { # prefix
  (
    i=0
    pending=0
    # A failed enqueue is retried with the same prefix (idempotent), so every
    # acknowledged batch is counted once, here, outside the database. A batch that failed
    # is retried until acknowledged even after the stream is told to stop: it may have
    # committed, and the count must say so.
    while [ -f "$WORK/stream.on" ] || [ "$pending" = 1 ]; do
      if "$BIN" enqueue --count "$STREAM_BATCH" --key-prefix "$1-$i" >/dev/null 2>>"$WORK/stream.err"; then
        echo "$i" >> "$WORK/stream.acked"; i=$((i + 1)); pending=0
      else echo x >> "$WORK/stream.fail"; pending=1; fi
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
  rm -f "$WORK"/stream.* "$WORK"/reads.* "$WORK"/posted "$WORK"/post-retries
  FAULT_OK=1 PROBES_OK=1
  touch "$WORK/stream.on"
  start_stream "$1"
  start_reader "$1"
  # A client POSTing through serve, each key retried until acknowledged (lib.sh).
  post_loop "$WORK" "$WORK/stream.off" "$1" 1 "$PORT" & POSTER_PID=$!
  sleep 2
}
end_traffic() {
  rm -f "$WORK/stream.on"; touch "$WORK/stream.off"
  wait "$STREAM_PID" "$READER_PID" "$POSTER_PID" 2>/dev/null
  STREAM_PID="" READER_PID="" POSTER_PID=""
  rm -f "$WORK/stream.off"
}
post_failures() { [ -f "$WORK/post-retries" ] && wc -l < "$WORK/post-retries" | tr -d ' ' || echo 0; }
count() { [ -f "$1" ] && wc -l < "$1" | tr -d ' ' || echo 0; }

# Waits for the scenario's jobs to finish, then proves the invariants. The expected
# number of jobs comes from what clients were told (acknowledged enqueues and POSTs),
# not from the database under test, so a lost acknowledged write fails the proof; the
# gateway's charges come from its own journal.
prove() { # prefix [extra acknowledged jobs] [journal]
  local posted=0; [ -s "$WORK/posted" ] && posted=$(wc -l < "$WORK/posted")
  local expected=$(( STREAM_BATCH * $(count "$WORK/stream.acked") + posted + ${2:-0} ))
  "$BIN" watch --key-prefix "$1" --count "$expected" \
    --gateway-journal "${3:-$JOURNAL}" --reads-per-tick 0 --expect-replicas 0 --timeout "${WATCH_TIMEOUT:-120}" > "$WORK/proof.txt" 2>/dev/null
  local rc=$?
  check_posted "$WORK/posted" >> "$WORK/proof.txt" || rc=1
  grep -E '^(PASS|FAIL)' "$WORK/proof.txt" | sed 's/^/    /'
  return $rc
}
record() { # name, verdict, recovery, notes
  local verdict="$2"; [ "$FAULT_OK" = 1 ] && [ "$PROBES_OK" = 1 ] || verdict=FAIL
  RESULTS+=("$(printf '%-30s %-5s %-10s %s' "$1" "$verdict" "$3" "$4")")
  VERDICTS+=("$verdict")
  if [ "$verdict" != PASS ]; then log "serve stats: $(curl -s --max-time 5 "$API/v1/stats" | head -c 1500)"; fi
}
seconds_until() { # seconds, command... -> prints the seconds until it succeeded; fails on timeout
  local t0; t0=$(now)
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.1; done
  since "$t0"
}
progressed_since() { [ "$(succeeded "$1")" -gt "$2" ]; }
# The succeeded count once the write path answers again (nothing after 60 s without).
baseline() {
  local n="" deadline=$((SECONDS + 60))
  until [[ "$n" =~ ^[0-9]+$ ]]; do [ $SECONDS -lt $deadline ] || return 1; n=$(succeeded "$1"); [[ "$n" =~ ^[0-9]+$ ]] || sleep 0.2; done
  echo "$n"
}


# run_scenarios LABEL "DEFAULTS" [SCENARIO...]: each scenario once (RUNS times with
# RUNS=n), one verdict each, then the table and "LABEL: n of m scenarios passed".
# Starts the gateway and serve first; returns non-zero if any failed.
run_scenarios() {
  local label="$1" defaults="$2"; shift 2
  local scenarios=("$@") s before t_scenario passed failed run
  [ ${#scenarios[@]} -gt 0 ] || read -r -a scenarios <<< "$defaults"
  local expanded=()
  for s in "${scenarios[@]}"; do for run in $(seq 1 "${RUNS:-1}"); do expanded+=("$s"); done; done
  scenarios=("${expanded[@]}")
  restart_gateway || return 1
  start_serve || return 1
  # One verdict per scenario: a scenario that records none, or more than one, fails.
  for s in "${scenarios[@]}"; do
    echo "--- $s"
    before=${#VERDICTS[@]}
    if ! declare -F "scenario_$s" >/dev/null; then echo "no scenario '$s'"; RESULTS+=("$s: unknown scenario"); VERDICTS+=(FAIL); continue; fi
    t_scenario=$SECONDS
    "scenario_$s"
    [ ${#VERDICTS[@]} -gt "$before" ] && RESULTS[-1]="${RESULTS[-1]} ($((SECONDS - t_scenario)) s)"
    if [ $(( ${#VERDICTS[@]} - before )) != 1 ]; then
      RESULTS=("${RESULTS[@]:0:$before}" "$(printf '%-30s %-5s %-10s %s' "$s" FAIL - "recorded $(( ${#VERDICTS[@]} - before )) verdicts")")
      VERDICTS=("${VERDICTS[@]:0:$before}" FAIL)
    fi
  done
  stop_serve
  gateway_stop
  echo
  printf '%-30s %-5s %-10s %s\n' SCENARIO RESULT RECOVERY NOTES
  printf '%s\n' "${RESULTS[@]}"
  passed=0; for v in "${VERDICTS[@]}"; do [ "$v" = PASS ] && passed=$((passed + 1)); done
  failed=$(( ${#scenarios[@]} - passed ))
  # A serve that ignored SIGTERM fails the run even when every money check held: a
  # deploy or a scale-down would have to SIGKILL it (the defect this once was: a handler
  # waiting for ever on pgbouncer-write held the HTTP server's drain).
  if [ "$UNCLEAN_STOPS" != 0 ]; then
    echo "FAIL  serve did not stop cleanly on SIGTERM $UNCLEAN_STOPS times (SERVE DID NOT STOP CLEANLY above)"
    failed=$((failed + 1))
  fi
  if [ "$failed" != 0 ]; then
    echo "pgbouncer-write pools:"; "${TOPO[@]}" psql admin-write -c "SHOW POOLS" 2>&1 | head -5
    echo "serve log (last lines; whole logs kept in $WORK):"; grep -v "read path failed" "$WORK/serve.log" | tail -60
  elif [ -z "${KEEP_WORK:-}" ]; then
    rm -rf "$WORK"
  fi
  echo "$label: $passed of ${#scenarios[@]} scenarios passed, $failed failed"
  [ "$failed" = 0 ]
}
