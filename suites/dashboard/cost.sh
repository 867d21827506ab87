#!/usr/bin/env bash
# What the dashboard costs the server: a `serve --no-workers` on the running topology,
# nobody else using it, with 0, 1 and N viewers of the event stream (curl; the server
# sends every viewer the same bytes, so a browser costs it what a curl costs). Prints,
# for each, serve's CPU (% of one core) and the statements per second the poolers ran
# (SHOW STATS' total_query_count on both, through the stats user).
#   suites/dashboard/cost.sh [--port-offset N]    VIEWERS=50 SECONDS_EACH=30
set -uo pipefail
PORT_OFFSET="${PORT_OFFSET:-0}"
if [ "${1:-}" = "--port-offset" ]; then PORT_OFFSET="$2"; shift 2; fi
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO"
BIN="${BIN:-$REPO/.build/release/payments}"
PORT=$((8080 + PORT_OFFSET + 67))
VIEWERS="${VIEWERS:-50}" EACH="${SECONDS_EACH:-30}"
eval "$("${TOPO[@]}" env)"
WORK="$(mktemp -d /tmp/payments-dashboard-cost.XXXXXX)"
CURLS=()
cleanup() { for p in "${CURLS[@]}"; do kill "$p" 2>/dev/null; done; serve_stop >/dev/null 2>&1; rm -rf "$WORK"; }
trap cleanup EXIT

serve_start "$BIN" "$PORT" "$WORK/serve.log" --no-workers || exit 1
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVE_PID/stat"; }
queries() { # statements both poolers have run since they started
  local total=0 port n
  for port in $((6432 + PORT_OFFSET)) $((6433 + PORT_OFFSET)); do
    n=$(PGPASSWORD="$PGBOUNCER_STATS_PASSWORD" psql -X -tA -F, "host=127.0.0.1 port=$port user=$PGBOUNCER_STATS_USER dbname=pgbouncer" \
          -c "SHOW STATS" | awk -F, -v db="${DB_NAME:-resilient_payment_processor}" '$1 == db {print $3}')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}
measure() { # label
  sleep 3  # the collector notices its viewers
  local c0 q0 t0 c1 q1 t1 hz
  hz=$(getconf CLK_TCK)
  c0=$(cpu_ticks); q0=$(queries); t0=$(date +%s.%N)
  sleep "$EACH"
  c1=$(cpu_ticks); q1=$(queries); t1=$(date +%s.%N)
  python3 -c "
dt = $t1 - $t0
print(f'  {\"$1\":<22} serve CPU {100 * ($c1 - $c0) / $hz / dt:5.1f}% of a core   statements/s through the poolers {($q1 - $q0) / dt:5.2f}')"
}
echo "dashboard cost ($EACH s each, serve --no-workers, $BIN):"
measure "no viewer"
curl -sN "http://127.0.0.1:$PORT/v1/dashboard/events" >/dev/null & CURLS+=($!)
measure "1 viewer"
for _ in $(seq 2 "$VIEWERS"); do curl -sN "http://127.0.0.1:$PORT/v1/dashboard/events" >/dev/null & CURLS+=($!); done
measure "$VIEWERS viewers"
