# shellcheck shell=bash
# Helpers shared by scripts/ and suites/: source it after setting PORT_OFFSET.
#   . "$REPO/scripts/lib.sh"
# Defines REPO, TOPO (the topology command for this offset) and the functions below.

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
PORT_OFFSET="${PORT_OFFSET:-0}"
TOPO=("$REPO/scripts/topology" --port-offset "$PORT_OFFSET")
# pid_alive
. "$REPO/scripts/process.sh"
# haproxy_servers, haproxy_server_status, haproxy_up (HAProxy's stats, by column name)
. "$REPO/scripts/haproxy.sh"

# The release build: one command for `make demo`, `make test` and the Dockerfile (the
# release suite checks the Dockerfile runs exactly this). Migrations and openapi.yaml
# are compiled in, so the binary needs nothing beside it but the Swift runtime
# libraries (the toolchain's, or the swift:*-slim image's).
RELEASE_BUILD=(swift build -c release --product payments)

# One statement through pgbouncer-write, unaligned output.
sql() { "${TOPO[@]}" psql pgbouncer-write -tA -c "$1" 2>/dev/null; }

# wait_http URL [SECONDS]: until URL answers 2xx (default 10 s).
wait_http() {
  local tries=$(( ${2:-10} * 10 ))
  for _ in $(seq 1 "$tries"); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# start_payments BIN COMMAND PORT LOG [ARGS...]: starts `payments COMMAND --port PORT` in
# the background, sets STARTED_PID, waits for /healthz; on failure prints the log's tail
# and returns 1.
start_payments() {
  local bin="$1" command="$2" port="$3" log="$4"; shift 4
  mkdir -p "$(dirname "$log")"
  "$bin" "$command" --port "$port" "$@" >>"$log" 2>&1 &
  STARTED_PID=$!
  wait_http "http://127.0.0.1:$port/healthz" 20 && return 0
  echo "$command did not start on port $port:" >&2; tail -20 "$log" >&2
  return 1
}

# serve_start BIN PORT LOG [ARGS...]: `payments serve`; sets SERVE_PID.
serve_start() {
  start_payments "$1" serve "$2" "$3" "${@:4}"; local rc=$?
  SERVE_PID=$STARTED_PID
  return $rc
}

# serve_stop [PID]: SIGTERM (graceful: in-flight jobs finish or are released), then
# SIGKILL after 30 s. Returns serve's exit status. Default PID: $SERVE_PID.
serve_stop() {
  local pid="${1:-${SERVE_PID:-}}"
  [ -n "$pid" ] || return 0
  [ "$pid" = "${SERVE_PID:-}" ] && SERVE_PID=""
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return $?; }
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "serve $pid ignored SIGTERM for 30 s: SIGKILL" >&2; kill -KILL "$pid"; fi
  local rc=0; wait "$pid" 2>/dev/null || rc=$?
  return $rc
}

# gateway_start BIN PORT JOURNAL LOG [ARGS...]: `payments gateway` (the simulated payment
# provider every serve shares); sets GATEWAY_PID.
gateway_start() {
  mkdir -p "$(dirname "$3")"
  start_payments "$1" gateway "$2" "$4" --journal "$3" "${@:5}"; local rc=$?
  GATEWAY_PID=$STARTED_PID
  return $rc
}

# gateway_stop [PID]: stops the gateway like serve_stop (default PID: $GATEWAY_PID).
gateway_stop() {
  local pid="${1:-${GATEWAY_PID:-}}"
  [ "$pid" = "${GATEWAY_PID:-}" ] && GATEWAY_PID=""
  serve_stop "$pid"
}

# open_jobs PREFIX: how many of a run's jobs are not terminal yet (queued, running, reconciling).
open_jobs() { sql "SELECT count(*) FROM payment_queue WHERE idempotency_key LIKE '$1-%'"; }

# wait_drained PREFIX [SECONDS]: until every job of a run is terminal (default 600 s).
wait_drained() {
  local deadline=$((SECONDS + ${2:-600}))
  until [ "$(open_jobs "$1")" = 0 ]; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}

# cancel_open_jobs: discards every queued or running job, benchmark data only (benchmarks
# start from an idle queue). It moves them to the history as `cancelled` without any of a
# real cancel's checks (`payments cancel` asks the gateway first): never on real payments.
# Reconciling jobs are left to the reconciler.
cancel_open_jobs() {
  sql "WITH gone AS (DELETE FROM payment_queue WHERE state IN ('queued', 'running') RETURNING *)
       INSERT INTO payment_history (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
                                    state, attempt, max_attempts, priority, run_at, lease_owner, lease_expires_at,
                                    last_error, charge_id, created_at, claimed_at, updated_at, finished_at, lease_losses)
       SELECT id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor,
              'cancelled', attempt, max_attempts, priority, run_at, NULL, NULL,
              'discarded by $(basename "$0"): benchmark data', NULL, created_at, claimed_at, now(), now(), lease_losses
       FROM gone" >/dev/null
}

# build_payments debug|release: builds `payments` (release: RELEASE_BUILD), showing the
# compiler's progress: the first build of this package takes several minutes on 2 cores.
# Prints the binary's path on stdout; everything else goes to stderr.
build_payments() {
  local config="$1" log
  log="$(mktemp /tmp/payments-build.XXXXXX.log)"
  if [ ! -x "$REPO/.build/$config/payments" ]; then
    echo "first $config build of payments: this takes several minutes on 2 cores (progress below)" >&2
  fi
  # SwiftPM prints "[n/total] Compiling …" lines: show them as one updating line on a
  # terminal, one line every 10% otherwise (a bash loop: awk would buffer its input).
  local command=(swift build -c debug --product payments)
  [ "$config" = release ] && command=("${RELEASE_BUILD[@]}")
  local tty=0; [ -t 2 ] && tty=1
  (cd "$REPO" && "${command[@]}" 2>&1) | tee "$log" | {
    local line n total pct last=-10
    while IFS= read -r line; do
      if [[ "$line" =~ ^\[([0-9]+)/([0-9]+)\]\ (.*)$ ]]; then
        n="${BASH_REMATCH[1]}" total="${BASH_REMATCH[2]}"
        [ "$total" -ge 20 ] || continue              # the plugin tools plan: a handful of steps
        pct=$((100 * n / total))
        [ $((pct + 20)) -lt "$last" ] && last=-10    # a new plan starts counting again
        if [ "$tty" = 1 ]; then
          printf '\r  building: %3d%% (%s/%s) %-60.60s' "$pct" "$n" "$total" "${BASH_REMATCH[3]}" >&2
        elif [ "$pct" -ge $((last + 10)) ]; then
          printf '  building: %d%% (%s/%s)\n' "$pct" "$n" "$total" >&2; last="$pct"
        fi
      elif [[ "$line" == *"error:"* || "$line" == *"Build of product"* || "$line" == *"Build complete"* ]]; then
        [ "$tty" = 1 ] && printf '\n' >&2
        printf '  %s\n' "$line" >&2
      fi
    done
  }
  local rc="${PIPESTATUS[0]}"
  if [ "$rc" != 0 ] || [ ! -x "$REPO/.build/$config/payments" ]; then
    echo "build failed; the compiler said:" >&2; grep -E "error" "$log" | head -20 >&2
    rm -f "$log"; return 1
  fi
  rm -f "$log"
  echo "$REPO/.build/$config/payments"
}
