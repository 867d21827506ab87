#!/usr/bin/env bash
# Topology tests against the real local topology (started by `make test`, or by hand:
# scripts/topology --port-offset 100 up). Prints "N passed, N failed" last.
#   suites/topology/run.sh [--port-offset N] [TEST...]
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT_OFFSET="${PORT_OFFSET:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port-offset) PORT_OFFSET="$2"; shift 2 ;;
    *) break ;;
  esac
done
TOPO=("$REPO/scripts/topology" --port-offset "$PORT_OFFSET")
# haproxy_servers, haproxy_server_status, haproxy_up (HAProxy's stats, by column name)
. "$REPO/scripts/haproxy.sh"
DB_USER="${DB_USER:-db_user}" DB_PASSWORD="${DB_PASSWORD:-db_password}"
DB_NAME="${DB_NAME:-resilient_payment_processor}"
PRIMARY=$((5432 + PORT_OFFSET)) R1=$((5433 + PORT_OFFSET)) R2=$((5434 + PORT_OFFSET))
HAPROXY=$((5440 + PORT_OFFSET)) HSTATS=$((8404 + PORT_OFFSET))
PGB_W=$((6432 + PORT_OFFSET)) PGB_R=$((6433 + PORT_OFFSET))
export PGPASSWORD="$DB_PASSWORD"

passed=0 failed=0 failures=()
q() { # port, sql : one query as the app user, unaligned output
  psql -X -q -tA "host=127.0.0.1 port=$1 user=$DB_USER dbname=$DB_NAME connect_timeout=5" -v ON_ERROR_STOP=1 -c "$2"
}
super() { "${TOPO[@]}" psql super -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
fail() { echo "    FAIL: $*"; return 1; }
run_test() {
  local name="$1"; echo "--- $name"
  local t0=$SECONDS
  if "$name"; then passed=$((passed + 1)); echo "    ok ($((SECONDS - t0))s)"
  else failed=$((failed + 1)); failures+=("$name"); fi
}
eventually() { # seconds, command... : retry until it succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}

# Reads through pgbouncer-read from several concurrent sessions, so the pooler opens
# several server connections (spread by HAProxy). Prints "in_recovery port" lines.
read_ports() { # sessions
  local i
  for i in $(seq 1 "$1"); do
    q "$PGB_R" "SELECT pg_is_in_recovery(), inet_server_port(), pg_sleep(0.3)" 2>&1 | cut -d'|' -f1,2 &
  done
  wait
}

test_compose_config() {
  local dc
  if docker compose version >/dev/null 2>&1; then dc=(docker compose); else dc=(docker-compose); fi
  "${dc[@]}" -f "$REPO/compose/docker-compose.yml" config -q || fail "compose config is invalid"
  "${dc[@]}" -f "$REPO/compose/docker-compose.ha.yml" config -q || fail "the HA compose config is invalid"
  # Every serve shares one `payments gateway`: the in-process simulation deduplicates per
  # process, so `--scale payments=2` would lose "never charged twice".
  # (Each output read whole before grep -q: with pipefail, grep leaving early fails the pipe.)
  local f services config
  for f in docker-compose.yml docker-compose.ha.yml; do
    services="$("${dc[@]}" -f "$REPO/compose/$f" config --services 2>/dev/null)"
    config="$("${dc[@]}" -f "$REPO/compose/$f" config 2>/dev/null)"
    grep -qx gateway <<<"$services" || fail "$f has no gateway service"
    grep -q -- "--gateway-url" <<<"$config" || fail "$f: serve does not use the gateway service"
  done
  # The same archiving as the local topology, and a backup service.
  services="$("${dc[@]}" -f "$REPO/compose/docker-compose.yml" config --services 2>/dev/null)"
  config="$("${dc[@]}" -f "$REPO/compose/docker-compose.yml" config 2>/dev/null)"
  grep -qx backup <<<"$services" || fail "compose has no backup service"
  grep -q "archive_command=pgbackrest" <<<"$config" || fail "the compose primary does not archive with pgbackrest"
}

# up creates the pgBackRest stanza and the primary archives into it.
test_wal_is_archived() {
  local out
  out="$("${TOPO[@]}" backups 2>&1)" || { fail "backups failed: $out"; return 1; }
  grep -Eq '^archiver: [1-9][0-9]* archived, ' <<<"$out" || { fail "the primary does not archive: $out"; return 1; }
  grep -q '^archive: ' <<<"$out" || { fail "the repository holds no WAL: $out"; return 1; }
}

test_up_twice_is_fine() {
  local before after
  before="$(cat "/var/tmp/payments-topology/offset-$PORT_OFFSET/run/pgbouncer-write.pid")"
  "${TOPO[@]}" up >/dev/null 2>&1 || { fail "a second up failed"; return 1; }
  after="$(cat "/var/tmp/payments-topology/offset-$PORT_OFFSET/run/pgbouncer-write.pid")"
  [ "$before" = "$after" ] || { fail "a second up restarted pgbouncer-write"; return 1; }
  [ "$(q "$PGB_W" "SELECT 1")" = 1 ] && [ "$(q "$PGB_R" "SELECT 1")" = 1 ] || fail "a pooler stopped answering after a second up"
}

# A DBA's shell: the caller's libpq variables must not reach the topology's processes or
# its own psql (with PGPASSWORD exported, Patroni's pg_basebackup used to fail as
# repl_user; the HA leg of make test brings its topology up with it exported).
test_callers_libpq_settings_are_ignored() {
  local out
  out="$(PGPASSWORD=wrong PGUSER=nobody PGDATABASE=nowhere PGHOST=/nonexistent PGPORT=1 PGSSLMODE=require \
         "${TOPO[@]}" psql super primary -d resilient_payment_processor -qtAc 'SELECT current_user')" \
    || { fail "scripts/topology psql failed with the caller's PG* variables set"; return 1; }
  [ "$out" = postgres ] || { fail "topology psql ran as '$out', not postgres"; return 1; }
  PGPASSWORD=wrong PGUSER=nobody PGHOST=/nonexistent "${TOPO[@]}" up >/dev/null 2>&1 \
    || fail "up failed with the caller's PG* variables set"
}

test_status_reports_everything() {
  local out; out="$("${TOPO[@]}" status)" || { fail "status exited non-zero with everything up"; return 1; }
  for needle in "primary" "replica-1" "replica-2" "streaming" "replica_1" "replica_2" "UP" "cl_active="; do
    echo "$out" | grep -q -- "$needle" || { fail "status does not show '$needle'"; return 1; }
  done
}

test_write_reaches_both_replicas() {
  local token="probe-$$-$RANDOM"
  q "$PGB_W" "CREATE TABLE IF NOT EXISTS topology_probe (note text PRIMARY KEY, at timestamptz DEFAULT now())" >/dev/null || return 1
  q "$PGB_W" "INSERT INTO topology_probe (note) VALUES ('$token')" >/dev/null || fail "insert through pgbouncer-write failed" || return 1
  local port
  for port in "$R1" "$R2"; do
    eventually 10 bash -c "[ \"\$(PGPASSWORD='$DB_PASSWORD' psql -X -tA 'host=127.0.0.1 port=$port user=$DB_USER dbname=$DB_NAME' -c \"SELECT count(*) FROM topology_probe WHERE note = '$token'\")\" = 1 ]" \
      || fail "row $token not visible on replica port $port within 10s" || return 1
  done
}

test_reads_spread_over_both_replicas() {
  local out; out="$(read_ports 12)"
  echo "$out" | sort | uniq -c | sed 's/^/    /'
  echo "$out" | grep -qv '^t|' && { fail "a read through pgbouncer-read was not on a replica: $(echo "$out" | grep -v '^t|' | head -1)"; return 1; }
  echo "$out" | grep -qx "t|$R1" || { fail "replica-1 ($R1) never answered"; return 1; }
  echo "$out" | grep -qx "t|$R2" || { fail "replica-2 ($R2) never answered"; return 1; }
}

test_write_through_read_pooler_refused() {
  local err
  err="$(q "$PGB_R" "INSERT INTO topology_probe (note) VALUES ('must-fail-$$')" 2>&1)" && { fail "a write through pgbouncer-read succeeded"; return 1; }
  echo "$err" | grep -q "read-only transaction" || fail "unexpected error: $err"
}

haproxy_status() { haproxy_server_status "$HSTATS" pg_read "$1"; }  # server -> UP/DOWN
haproxy_has_up() { [ "$(haproxy_status "$1")" = UP ]; }
replica_caught_up() { # application_name, lsn
  [ "$(super "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$1' AND state = 'streaming' AND replay_lsn >= '$2'::pg_lsn")" = 1 ]
}
reads_reach() { read_ports 8 | grep -qx "t|$1"; }

test_replica_down_then_back() {
  "${TOPO[@]}" stop replica-1 || return 1
  # Written while replica-1 is down: it must catch up on it after the restart.
  local token="while-down-$$-$RANDOM" i ok=0 retried=0 bad=0 out
  q "$PGB_W" "INSERT INTO topology_probe (note) VALUES ('$token')" >/dev/null || return 1
  local lsn; lsn="$(super "SELECT pg_current_wal_lsn()")"
  for i in $(seq 1 30); do
    if out="$(q "$PGB_R" "SELECT inet_server_port()" 2>/dev/null)"; then ok=$((ok + 1))
    elif out="$(q "$PGB_R" "SELECT inet_server_port()" 2>/dev/null)"; then ok=$((ok + 1)); retried=$((retried + 1))
    else bad=$((bad + 1)); fi
    [ -z "$out" ] || [ "$out" = "$R2" ] || { fail "read served by port $out while replica-1 was down"; return 1; }
  done
  echo "    with replica-1 down: $ok/30 reads ok ($retried needed one retry), $bad failed; haproxy sees replica-1 $(haproxy_status replica-1)"
  [ "$bad" = 0 ] || { fail "$bad reads failed with one replica down"; return 1; }
  local t0=$SECONDS
  "${TOPO[@]}" start replica-1 || return 1
  eventually 30 replica_caught_up replica-1 "$lsn" || { fail "replica-1 did not catch up to $lsn"; return 1; }
  eventually 15 haproxy_has_up replica-1 \
    || { fail "haproxy did not put replica-1 back"; return 1; }
  [ "$(PGPASSWORD="$DB_PASSWORD" psql -X -tA "host=127.0.0.1 port=$R1 user=$DB_USER dbname=$DB_NAME" -c "SELECT count(*) FROM topology_probe WHERE note = '$token'")" = 1 ] \
    || { fail "row written while replica-1 was down is missing on it"; return 1; }
  # pgbouncer-read's server_lifetime (20 s) rebalances its pool onto the returned replica.
  eventually 45 reads_reach "$R1" || { fail "reads through pgbouncer-read never reached replica-1 again"; return 1; }
  echo "    replica-1 back: caught up, UP in haproxy, serving reads $((SECONDS - t0))s after restart"
}

# A pooler that crashed (SIGKILL) starts again with `topology start`. Nothing here reaps a
# daemon, so the dead one lingers as a zombie under its pid file; a start that took the
# zombie for a running pooler returned 0 and left the port refusing (chaos, 2026-12-07).
test_pgbouncer_killed_then_started_runs_again() {
  local old new
  old="$("${TOPO[@]}" pid pgbouncer-write)" || { fail "no pgbouncer-write pid"; return 1; }
  kill -KILL "$old" || return 1
  eventually 5 port_refuses "$PGB_W" || { fail "pgbouncer-write still answers after SIGKILL"; return 1; }
  "${TOPO[@]}" start pgbouncer-write || { fail "topology start pgbouncer-write failed"; return 1; }
  new="$("${TOPO[@]}" pid pgbouncer-write)"
  [ -n "$new" ] && [ "$new" != "$old" ] || { fail "pgbouncer-write not replaced ($old -> ${new:-none})"; return 1; }
  [ "$(q "$PGB_W" "SELECT 1")" = 1 ] || { fail "pgbouncer-write does not answer after start"; return 1; }
  echo "    pgbouncer-write $old SIGKILLed, $new started and answering"
}
port_refuses() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pid and the fault suites wait on pid_alive: a stopped process must read as gone.
test_a_stopped_process_reads_as_gone() {
  ( . "$REPO/scripts/process.sh"
    local dir zombie parent; dir="$(mktemp -d)"
    # A name with a space and a parenthesis: /proc/PID/stat's fields after it shift.
    cp "$(command -v sleep)" "$dir/a (b"
    # The child exits at once and lingers as a zombie: its parent (now sleep) never reaps it.
    bash -c '"$1" 0 & echo $! > "$2/child"; exec sleep 5' _ "$dir/a (b" "$dir" &
    parent=$!
    eventually 3 test -s "$dir/child" || { fail "no child started"; return 1; }
    zombie="$(cat "$dir/child")"
    eventually 3 grep -q ') Z ' "/proc/$zombie/stat" || { fail "child $zombie never became a zombie"; return 1; }
    local verdict=gone; pid_alive "$zombie" && verdict=alive
    kill "$parent" 2>/dev/null; wait "$parent" 2>/dev/null; rm -rf "$dir"
    [ "$verdict" = gone ] || { fail "zombie $zombie named 'a (b' read as alive"; return 1; }
    pid_alive $$ || { fail "this shell read as gone"; return 1; }
    ! pid_alive 999999999 || { fail "a pid that does not exist read as alive"; return 1; }
    ! pid_alive "" || { fail "no pid read as alive (/proc//stat is the kernel's)"; return 1; }
    echo "    a zombie named 'a (b' reads as gone" )
}

test_many_clients_at_once() {
  local clients="${TOPOLOGY_TEST_CLIENTS:-10000}"
  ulimit -n "$(ulimit -Hn)"
  local script; script="$(mktemp)"
  # Every client connects first, then all sleep together: every connection open at once
  # (10,000 by default; make test uses 2,000, make scale 10,000).
  printf '\\sleep 3 s\nSELECT pg_is_in_recovery();\n' > "$script"
  local log; log="$(mktemp)"
  local samples; samples="$(mktemp)"
  PGPASSWORD="$DB_PASSWORD" /usr/lib/postgresql/15/bin/pgbench -n -h 127.0.0.1 -p "$PGB_R" -U "$DB_USER" \
    -c "$clients" -j 2 -t 1 -f "$script" "$DB_NAME" >"$log" 2>&1 &
  local pid=$!
  # While pgbench runs: clients seen by pgbouncer-read, server backends on each replica.
  while kill -0 "$pid" 2>/dev/null; do
    local pools backends
    pools="$(PGPASSWORD="${PGBOUNCER_ADMIN_PASSWORD:-admin_password}" psql -X -tA -F' ' "host=127.0.0.1 port=$PGB_R user=${PGBOUNCER_ADMIN_USER:-pgbouncer_admin} dbname=pgbouncer" -c 'SHOW POOLS' 2>/dev/null | awk '$1 != "pgbouncer" {c += $3 + $4} END {print c+0}')"
    backends=0
    for port in "$R1" "$R2" "$PRIMARY"; do
      backends=$((backends + $(q "$port" "SELECT count(*) FROM pg_stat_activity WHERE usename = '$DB_USER' AND backend_type = 'client backend' AND pid <> pg_backend_pid()" 2>/dev/null || echo 0)))
    done
    echo "$pools $backends" >> "$samples"
    sleep 0.5
  done
  wait "$pid"; local rc=$?
  local max_clients max_backends
  max_clients="$(awk 'BEGIN{m=0} $1>m {m=$1} END {print m}' "$samples")"
  max_backends="$(awk 'BEGIN{m=0} $2>m {m=$2} END {print m}' "$samples")"
  grep -E 'processed|failed|connection time|tps' "$log" | sed 's/^/    pgbench: /'
  echo "    peak clients on pgbouncer-read: $max_clients; peak server backends (replicas + primary): $max_backends"
  rm -f "$script" "$samples"
  [ "$rc" = 0 ] || { tail -5 "$log"; rm -f "$log"; fail "pgbench exited $rc"; return 1; }
  grep -q "actually processed: $clients/$clients" "$log" || { rm -f "$log"; fail "not every client ran its query"; return 1; }
  rm -f "$log"
  [ "$max_clients" -ge "$clients" ] || { fail "never saw $clients clients at once (peak $max_clients)"; return 1; }
  # max_db_connections = 24 in pgbouncer-read.ini
  [ "$max_backends" -le 24 ] || fail "PostgreSQL had $max_backends backends for db_user, more than the pool allows (24)"
}

# ---------------------------------------------------------------- least privilege
expect_error() { # description, pattern, command... : the command must fail with the pattern
  local what="$1" pattern="$2"; shift 2
  local out; if out="$("$@" 2>&1)"; then fail "$what succeeded"; return 1; fi
  echo "$out" | grep -qi -- "$pattern" || { fail "$what failed differently: $out"; return 1; }
}

test_app_role_cannot_create_roles_or_databases() {
  expect_error "CREATE ROLE as db_user" "permission denied" q "$PGB_W" "CREATE ROLE intruder" || return 1
  expect_error "CREATE DATABASE as db_user" "permission denied" q "$PGB_W" "CREATE DATABASE intruder" || return 1
  expect_error "CREATE TABLE in another database" "permission denied" \
    psql -X -q "host=127.0.0.1 port=$PRIMARY user=$DB_USER dbname=postgres" -v ON_ERROR_STOP=1 -c "CREATE TABLE intruder (x int)" || return 1
  local attrs; attrs="$(super "SELECT rolsuper::int + rolcreaterole::int + rolcreatedb::int + rolreplication::int + rolbypassrls::int FROM pg_roles WHERE rolname = '$DB_USER'")"
  [ "$attrs" = 0 ] || { fail "db_user has elevated attributes ($attrs)"; return 1; }
  local owned; owned="$(super "SELECT string_agg(nspname, ',') FROM pg_namespace WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = '$DB_USER')")"
  [ "$owned" = "public" ] || [ -z "$owned" ] || fail "db_user owns schemas beyond its own: $owned"
}

test_replication_role_cannot_log_in_to_the_database() {
  expect_error "repl_user login" "pg_hba.conf rejects" env PGPASSWORD="${REPL_PASSWORD:-repl_password}" \
    psql -X "host=127.0.0.1 port=$PRIMARY user=${REPL_USER:-repl_user} dbname=$DB_NAME" -c "SELECT 1"
}

test_pg_hba_has_no_trust_and_only_loopback() {
  local trust other
  trust="$(super "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'")"
  [ "$trust" = 0 ] || { fail "$trust trust rules in pg_hba"; return 1; }
  other="$(super "SELECT count(*) FROM pg_hba_file_rules WHERE type <> 'local' AND auth_method <> 'reject' AND address NOT IN ('127.0.0.1', '::1')")"
  [ "$other" = 0 ] || fail "$other pg_hba rules accept non-loopback addresses"
}

test_pgbouncer_admin_console_needs_its_password() {
  local port
  for port in "$PGB_W" "$PGB_R"; do
    expect_error "admin console with a wrong password" "authentication failed" env PGPASSWORD=wrong \
      psql -X "host=127.0.0.1 port=$port user=${PGBOUNCER_ADMIN_USER:-pgbouncer_admin} dbname=pgbouncer" -c "SHOW POOLS" || return 1
    expect_error "admin console as the app user" "not allowed" \
      psql -X "host=127.0.0.1 port=$port user=$DB_USER dbname=pgbouncer" -c "SHOW POOLS" || return 1
  done
}

test_no_secret_in_logs() {
  local state="/var/tmp/payments-topology/offset-$PORT_OFFSET" secret hits
  for secret in "$DB_PASSWORD" "${REPL_PASSWORD:-repl_password}" "${PGBOUNCER_ADMIN_PASSWORD:-admin_password}"; do
    hits="$(grep -rlF -- "$secret" "$state/log" 2>/dev/null || true)"
    [ -z "$hits" ] || { fail "a password appears in: $hits"; return 1; }
  done
}

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(test_compose_config test_wal_is_archived test_up_twice_is_fine test_callers_libpq_settings_are_ignored test_status_reports_everything test_write_reaches_both_replicas test_reads_spread_over_both_replicas
  test_write_through_read_pooler_refused test_replica_down_then_back test_pgbouncer_killed_then_started_runs_again test_a_stopped_process_reads_as_gone test_many_clients_at_once
  test_app_role_cannot_create_roles_or_databases test_replication_role_cannot_log_in_to_the_database
  test_pg_hba_has_no_trust_and_only_loopback test_pgbouncer_admin_console_needs_its_password test_no_secret_in_logs)
for t in "${tests[@]}"; do run_test "$t"; done
[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}"
echo "topology: $passed passed, $failed failed"
[ "$failed" = 0 ]
