# HA mode of scripts/topology (`--ha`), sourced after the seed's functions and
# overriding those that differ.
#
# Services: etcd-1..3 (a three-member etcd cluster), node-1..3 (Patroni, each managing
# one PostgreSQL on the seed's node ports 5432-5434), haproxy (pg_write: the leader, by
# Patroni's GET /primary; pg_read: replicas within READ_LAG_BOUND by GET /replica?lag=,
# the leader when none), pgbouncer-write (its server side through haproxy's pg_write, so
# writes follow the leader) and pgbouncer-read (through pg_read), on the seed's ports.

SERVICES=(etcd-1 etcd-2 etcd-3 node-1 node-2 node-3 haproxy pgbouncer-write pgbouncer-read)
NODES=(node-1 node-2 node-3)
HAPROXY_WRITE_PORT=$((5439 + PORT_OFFSET))
READ_LAG_BOUND="${READ_LAG_BOUND:-16MB}"
# Where patroni and patronictl are: Debian's (3.0.2, on PATH) unless PATRONI_BIN_DIR
# names another (a virtual environment with Patroni from PyPI).
PATRONI_BIN="${PATRONI_BIN_DIR:+$PATRONI_BIN_DIR/}patroni"
PATRONICTL_BIN="${PATRONI_BIN_DIR:+$PATRONI_BIN_DIR/}patronictl"
REWIND_USER="${REWIND_USER:-payments_rewind}"
REWIND_PASSWORD="${REWIND_PASSWORD:-rewind_password}"

node_index() { echo "${1##*-}"; }
node_pg_port() { echo $((5431 + $(node_index "$1") + PORT_OFFSET)); }
node_rest_port() { echo $((8007 + $(node_index "$1") + PORT_OFFSET)); }
etcd_client_port() { echo $((2377 + 2 * $(node_index "$1") + PORT_OFFSET)); }
etcd_peer_port() { echo $((2378 + 2 * $(node_index "$1") + PORT_OFFSET)); }
etcd_hosts() { local i out=""; for i in 1 2 3; do out+="${out:+,}127.0.0.1:$(etcd_client_port "etcd-$i")"; done; echo "$out"; }

port_of() {
  case "$1" in
    node-1|node-2|node-3) node_pg_port "$1" ;;
    etcd-1|etcd-2|etcd-3) etcd_client_port "$1" ;;
    haproxy) echo "$HAPROXY_PORT" ;; haproxy-write) echo "$HAPROXY_WRITE_PORT" ;;
    pgbouncer-write) echo "$PGB_WRITE_PORT" ;; pgbouncer-read) echo "$PGB_READ_PORT" ;;
    *) die "unknown service '$1' (one of: ${SERVICES[*]})" ;;
  esac
}

ha_ensure_packages() {
  command -v patroni >/dev/null && command -v etcd >/dev/null && command -v etcdctl >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "missing packages: patroni etcd-server etcd-client (run as root)"
  # Debian's etcd-server would start a system etcd on 2379: policy-rc.d forbids it.
  log "installing patroni etcd-server etcd-client"
  "$REPO/scripts/apt-install" patroni etcd-server etcd-client || die "installing patroni etcd-server etcd-client failed"
  command -v patroni >/dev/null && command -v etcd >/dev/null || die "patroni or etcd still missing after apt-get install"
}

# ---------------------------------------------------------------- configs
render_configs() {
  # pg_rewind's role connects to the new leader over TCP (scram, like every role).
  render_node_configs
  cp "$CONFIGS/patroni/post-bootstrap.sh" "$CONF_DIR/patroni-post-bootstrap.sh"
  chmod 755 "$CONF_DIR/patroni-post-bootstrap.sh"
  cp "$CONFIGS/haproxy/haproxy-ha.cfg" "$CONF_DIR/haproxy.cfg"
  local node
  for node in "${NODES[@]}"; do
    sed -e "s|@NODE@|$node|g" -e "s|@LISTEN_HOST@|127.0.0.1|g" -e "s|@CONNECT_HOST@|127.0.0.1|g" -e "s|@REST_PORT@|$(node_rest_port "$node")|g" -e "s|@PG_PORT@|$(node_pg_port "$node")|g" \
        -e "s|@ETCD_HOSTS@|$(etcd_hosts)|g" -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@STATE_DIR@|$STATE_DIR|g" \
        -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@DATA_DIR@|$(data_of "$node")|g" -e "s|@PG_BIN@|$PG_BIN|g" \
        -e "s|@REPL_USER@|$REPL_USER|g" -e "s|@REPL_PASSWORD@|$REPL_PASSWORD|g" \
        -e "s|@REWIND_USER@|$REWIND_USER|g" -e "s|@REWIND_PASSWORD@|$REWIND_PASSWORD|g" \
        "$CONFIGS/patroni/patroni.yml" > "$CONF_DIR/$node.yml"
    chmod 600 "$CONF_DIR/$node.yml"
  done
  render_backup_config
  for node in "${NODES[@]}"; do patroni_archive_settings "$node" "$CONF_DIR/$node.yml"; done
  write_userlist
  # Writes through HAProxy's pg_write (the leader), reads through its pg_read.
  render_poolers "$HAPROXY_WRITE_PORT" "$HAPROXY_PORT"
  # Behind HAProxy a failed login means "no leader yet", and HAProxy answers at once:
  # try again after 0.2 s rather than the seed's 1 s, which alone held the write path
  # shut for two seconds after a switchover (two failed logins in a row).
  sed -i 's/^server_login_retry = .*/server_login_retry = 0.2/' "$CONF_DIR/pgbouncer-write.ini" "$CONF_DIR/pgbouncer-read.ini"
  finish_configs
}

# The leader's node name (Patroni's /cluster, from any node that answers); empty if none.
. "$REPO/scripts/ha-lib.sh"
leader() { ha_leader || true; }
leader_port() { local l; l="$(leader)"; [ -n "$l" ] && node_pg_port "$l"; }
# The app role's SCRAM secret comes from whichever node leads.
userlist_source_port() { leader_port 2>/dev/null || true; }

# ---------------------------------------------------------------- processes
# etcd and Patroni do not daemonise: each runs in the background, detached from this
# script's output, and writes its own pid (the shell's, which it then becomes).
spawn() { # service, log, command...
  local service="$1" logf="$2"; shift 2
  local pidfile; pidfile="$(pidfile_of "$service")"
  rm -f "$pidfile"
  as_user bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >>"$logf" 2>&1 < /dev/null &
  wait_for "$service to write its pid" 10 test -s "$pidfile" || die "$service did not start (log: $logf)"
}

running() {
  case "$1" in
    etcd-*) pid_running "$1" etcd ;;
    node-*) pid_running "$1" patroni ;;
    haproxy) pid_running haproxy haproxy ;;
    pgbouncer-*) pid_running "$1" pgbouncer ;;
  esac
}

etcd_start() { # etcd-N
  running "$1" && return 0
  local i cluster=""
  for i in 1 2 3; do cluster+="${cluster:+,}etcd-$i=http://127.0.0.1:$(etcd_peer_port "etcd-$i")"; done
  mkdir -p "$STATE_DIR/$1"; [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$STATE_DIR/$1"
  spawn "$1" "$LOG_DIR/$1.log" etcd --name "$1" --data-dir "$STATE_DIR/$1/data" \
    --listen-client-urls "http://127.0.0.1:$(etcd_client_port "$1")" --advertise-client-urls "http://127.0.0.1:$(etcd_client_port "$1")" \
    --listen-peer-urls "http://127.0.0.1:$(etcd_peer_port "$1")" --initial-advertise-peer-urls "http://127.0.0.1:$(etcd_peer_port "$1")" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "payments-$PORT_OFFSET"
}

node_start() { # node-N
  running "$1" && return 0
  port_busy "$(node_pg_port "$1")" && die "port $(node_pg_port "$1") is already taken: cannot start $1 (use --port-offset)"
  mkdir -p "$STATE_DIR/$1"; [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$STATE_DIR/$1"
  spawn "$1" "$LOG_DIR/$1.log" env DB_USER="$DB_USER" DB_PASSWORD="$DB_PASSWORD" DB_NAME="$DB_NAME" \
    REPL_USER="$REPL_USER" REPL_PASSWORD="$REPL_PASSWORD" HAPROXY_CHECK_USER="$HAPROXY_CHECK_USER" \
    "$PATRONI_BIN" "$CONF_DIR/$1.yml"
}

haproxy_start() {
  running haproxy && return 0
  port_busy "$HAPROXY_PORT" && die "port $HAPROXY_PORT is already taken: cannot start haproxy (use --port-offset)"
  rm -f "$RUN_DIR/haproxy.sock"
  raise_fd_limit
  as_user env HAPROXY_BIND="127.0.0.1:$HAPROXY_PORT" HAPROXY_WRITE_BIND="127.0.0.1:$HAPROXY_WRITE_PORT" \
    HAPROXY_STATS_BIND="127.0.0.1:$HAPROXY_STATS_PORT" HAPROXY_STATS_SOCKET="$RUN_DIR/haproxy.sock" READ_LAG_BOUND="$READ_LAG_BOUND" \
    NODE1_ADDR="127.0.0.1:$(node_pg_port node-1)" NODE2_ADDR="127.0.0.1:$(node_pg_port node-2)" NODE3_ADDR="127.0.0.1:$(node_pg_port node-3)" \
    NODE1_REST="$(node_rest_port node-1)" NODE2_REST="$(node_rest_port node-2)" NODE3_REST="$(node_rest_port node-3)" \
    haproxy -D -q -f "$CONF_DIR/haproxy.cfg" -p "$(pidfile_of haproxy)" >>"$LOG_DIR/haproxy.log" 2>&1 \
    || { tail -5 "$LOG_DIR/haproxy.log" >&2; die "haproxy did not start"; }
}

start_service() {
  case "$1" in
    etcd-*) etcd_start "$1" ;;
    node-*) node_start "$1" ;;
    haproxy) haproxy_start ;;
    pgbouncer-write|pgbouncer-read) pgbouncer_start "$1" ;;
    *) die "unknown service '$1' (one of: ${SERVICES[*]})" ;;
  esac
  wait_for "$1 to run" 10 running "$1" || die "$1 is not running after start (log: $LOG_DIR)"
}

stop_service() {
  case "$1" in
    # Patroni stops its PostgreSQL (fast) before it exits.
    node-*) stop_pid "$1" TERM; if pg_running "$1"; then as_user "$PG_BIN/pg_ctl" -D "$(data_of "$1")" -m fast -w -t 60 stop >/dev/null || true; fi ;;
    etcd-*) stop_pid "$1" TERM ;;
    haproxy) stop_pid haproxy TERM ;;
    pgbouncer-write|pgbouncer-read) stop_pid "$1" INT ;;
    *) die "unknown service '$1' (one of: ${SERVICES[*]})" ;;
  esac
  ! running "$1" || die "$1 is still running after stop"
}

service_pid() {
  running "$1" || die "$1 is not running"
  cat "$(pidfile_of "$1")"
}

# ---------------------------------------------------------------- readiness
etcd_healthy() { ETCDCTL_API=3 etcdctl --endpoints="$(etcd_hosts)" endpoint health >/dev/null 2>&1; }
node_is() { # node, primary|replica
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$(node_rest_port "$1")/$2")" = 200 ]
}
has_leader() { [ -n "$(leader)" ]; }
replicas_ready() {
  local node n=0
  for node in "${NODES[@]}"; do node_is "$node" "replica?lag=$READ_LAG_BOUND" && n=$((n + 1)); done
  [ "$n" = 2 ]
}
haproxy_replicas_up() {
  [ "$(haproxy_up "$HAPROXY_STATS_PORT" pg_replicas '^node-' | wc -l)" = 2 ]
}

# The first wait that times out fails `up` (a function called before || runs without
# errexit: each wait must say so itself; "HA up" used to follow two timeouts).
wait_ready() {
  wait_for "a Patroni leader" 90 has_leader \
    && wait_for "two replicas streaming within $READ_LAG_BOUND" 180 replicas_ready \
    && wait_for "haproxy marking both replicas UP" 60 haproxy_replicas_up \
    && wait_for "pgbouncer-write" 30 pooler_answers "$PGB_WRITE_PORT" \
    && wait_for "pgbouncer-read" 30 pooler_answers "$PGB_READ_PORT"
}

# ---------------------------------------------------------------- commands
cmd_up() {
  local t0=$SECONDS s
  ensure_packages
  ha_ensure_packages
  prepare_state
  for s in etcd-1 etcd-2 etcd-3; do etcd_start "$s"; done
  wait_for "etcd quorum" 30 etcd_healthy || die "etcd did not become healthy (logs: $LOG_DIR/etcd-*.log)"
  node_start node-1
  wait_for "a Patroni leader" 90 has_leader || die "no leader (log: $LOG_DIR/node-1.log)"
  wait_for "the leader to accept writes" 60 writer_writable || die "the leader is still read-only"
  stanza_ensure
  node_start node-2
  node_start node-3
  write_userlist
  haproxy_start
  pgbouncer_start pgbouncer-write
  pgbouncer_start pgbouncer-read
  wait_ready || { cmd_status >&2 || true; die "the HA topology did not become ready"; }
  log "HA up in $((SECONDS - t0))s (state: $STATE_DIR); leader $(leader); pgbouncer-write 127.0.0.1:$PGB_WRITE_PORT, pgbouncer-read 127.0.0.1:$PGB_READ_PORT"
}

cmd_down() {
  local purge=0 s
  [ "${1:-}" = "--purge" ] && purge=1
  [ -d "$STATE_DIR" ] || { log "nothing to stop (no state at $STATE_DIR)"; return 0; }
  for s in pgbouncer-read pgbouncer-write haproxy node-3 node-2 node-1 etcd-3 etcd-2 etcd-1; do stop_service "$s"; done
  if [ "$purge" = 1 ]; then
    rm -rf "${STATE_DIR:?}"; rm -f "$REPO/.state/$(basename "$STATE_DIR")"
    log "stopped and purged $STATE_DIR"
  else log "stopped (data kept in $STATE_DIR)"; fi
}

cmd_status() {
  local s rc=0 state
  echo "state: $STATE_DIR (HA mode)"
  printf '%-16s %-6s %-6s\n' SERVICE PORT STATE
  for s in "${SERVICES[@]}"; do
    if running "$s"; then state=up; else state=down; rc=1; fi
    printf '%-16s %-6s %-6s\n' "$s" "$(port_of "$s")" "$state"
  done
  echo; echo "Patroni cluster:"
  local node
  for node in "${NODES[@]}"; do
    if running "$node"; then as_user "$PATRONICTL_BIN" -c "$CONF_DIR/$node.yml" list 2>/dev/null && break; fi
  done
  local lp; lp="$(leader_port 2>/dev/null || true)"
  if [ -n "$lp" ]; then
    echo "replication (from the leader; sync = the standby whose flush every commit waits for):"
    super_psql "$lp" -d postgres -tAF'|' -c "SELECT application_name, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn),
        COALESCE(EXTRACT(EPOCH FROM replay_lag), 0), (SELECT timeline_id FROM pg_control_checkpoint())
      FROM pg_stat_replication ORDER BY application_name" 2>/dev/null \
      | awk -F'|' '{printf "  %-8s %-10s %-6s replay lag %s bytes, %.3f s (leader timeline %s)\n", $1, $2, $3, $4, $5, $6}'
  fi
  if running haproxy; then
    echo "haproxy backends:"
    for proxy in pg_leader pg_replicas; do
      haproxy_servers "$HAPROXY_STATS_PORT" "$proxy" | awk -F'\t' -v px="$proxy" '{printf "  %-12s %-8s %-5s sessions=%s\n", px, $1, $2, $3}' || true
    done
  fi
  return $rc
}

cmd_env() {
  # PRIMARY_DSN: whichever node leads now, through HAProxy's pg_write (no pooler).
  cat <<EOF
export WRITE_DSN='postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PGB_WRITE_PORT/$DB_NAME?sslmode=disable'
export READ_DSN='postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$PGB_READ_PORT/$DB_NAME?sslmode=disable'
export PRIMARY_DSN='postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$HAPROXY_WRITE_PORT/$DB_NAME?sslmode=disable'
export NODE_DSNS='$(for n in "${NODES[@]}"; do printf 'postgres://%s:%s@127.0.0.1:%s/%s?sslmode=disable&connect_timeout=1 ' "$DB_USER" "$DB_PASSWORD" "$(node_pg_port "$n")" "$DB_NAME"; done)'
export PORT_OFFSET=$PORT_OFFSET
export TOPOLOGY_HA=1
export TOPOLOGY_STATE_DIR='$STATE_DIR'
export BACKUP_REPO_DIR='$STATE_DIR/backups'
$(dashboard_env)
export PATRONI_URLS='$(for n in "${NODES[@]}"; do printf 'http://127.0.0.1:%s ' "$(node_rest_port "$n")"; done)'
EOF
}

# The postmaster of a node (not Patroni's pid, which `pid` gives).
node_postmaster() {
  case "$1" in node-1|node-2|node-3) ;; *) die "unknown node '$1' (node-1, node-2 or node-3)" ;; esac
  local pidfile; pidfile="$(data_of "$1")/postmaster.pid"
  [ -r "$pidfile" ] || die "$1 has no postmaster.pid (not running)"
  local pid; pid="$(head -1 "$pidfile")"
  kill -0 "$pid" 2>/dev/null || die "$1's postmaster $pid is not running"
  echo "$pid"
}

cmd_patronictl() {
  local node
  for node in "${NODES[@]}"; do
    if running "$node"; then as_user "$PATRONICTL_BIN" -c "$CONF_DIR/$node.yml" "$@"; return; fi
  done
  die "no Patroni is running"
}

# The pg_leader servers HAProxy has UP (the one node writes go to, when all is well).
haproxy_write_up() {
  haproxy_up "$HAPROXY_STATS_PORT" pg_leader '^node-' | paste -sd' '
}

# A planned switchover that fails no write: pgbouncer-write is paused around Patroni's
# switchover (PAUSE waits for the transactions under way to finish and
# closes its server connections; clients' next queries wait in the pooler), and resumed
# once HAProxy sends writes to the new leader alone. A bare `patronictl switchover`
# fails writes for 1.5-2 s instead (the old leader refusing logins while it stops,
# then no leader: pgbouncer fails every waiting client at once while logins fail).
# Clients see the same time without a commit, as a wait.
cmd_switchover() {
  local candidate="" old
  while [ $# -gt 0 ]; do
    case "$1" in
      --candidate) [ $# -ge 2 ] || die "usage: switchover [--candidate NODE]"; candidate="$2"; shift 2 ;;
      *) die "usage: switchover [--candidate NODE] (unknown argument: $1)" ;;
    esac
  done
  old="$(leader)"; [ -n "$old" ] || die "switchover: no leader to switch from"
  [ -n "$candidate" ] || candidate="$(ha_sync || true)"
  [ -n "$candidate" ] || die "switchover: no synchronous standby to switch to (name one with --candidate)"
  case " ${NODES[*]} " in *" $candidate "*) ;; *) die "switchover: no node '$candidate' (nodes: ${NODES[*]})" ;; esac
  [ "$candidate" != "$old" ] || die "switchover: $candidate already leads"
  local t0; t0=$(date +%s.%N)
  log "switchover $old -> $candidate: pausing pgbouncer-write (waits for the transactions under way)"
  # (timeout runs programs, not functions: admin_psql spelled out)
  if ! PGPASSWORD="$PGBOUNCER_ADMIN_PASSWORD" timeout 15 psql -X -q \
      "host=127.0.0.1 port=$PGB_WRITE_PORT user=$PGBOUNCER_ADMIN_USER dbname=pgbouncer connect_timeout=5" \
      -c "PAUSE $DB_NAME" >/dev/null; then
    admin_psql "$PGB_WRITE_PORT" -c "RESUME $DB_NAME" >/dev/null 2>&1
    die "switchover: pgbouncer-write did not pause within 15 s (a transaction held open?); resumed, nothing switched"
  fi
  # Whatever happens from here, writes are resumed: a pooler left paused stops every payment.
  trap 'admin_psql "$PGB_WRITE_PORT" -c "RESUME $DB_NAME" >/dev/null 2>&1' EXIT
  # Patroni's REST API rather than patronictl: the same switchover, without a Python
  # program starting up (half a second here) while every write waits. Patroni answers
  # only at its next one-second poll after the switch, so writes resume as soon as
  # HAProxy sends them to the candidate alone, and the answer is read after.
  local answer_file; answer_file="$(mktemp)"
  curl -sS --max-time 60 -o "$answer_file" -w ' HTTP %{http_code}' -X POST \
    -d "{\"leader\": \"$old\", \"candidate\": \"$candidate\"}" \
    "http://127.0.0.1:$(node_rest_port "$old")/switchover" > "$answer_file.status" 2>&1 &
  local request=$! i
  for ((i = 0; i < 600; i++)); do
    [ "$(haproxy_write_up)" = "$candidate" ] && break
    # Refused (no such candidate, not healthy, a switchover already running): stop waiting.
    if ! kill -0 "$request" 2>/dev/null && ! grep -q ' HTTP 200' "$answer_file.status"; then break; fi
    sleep 0.05
  done
  admin_psql "$PGB_WRITE_PORT" -c "RESUME $DB_NAME" >/dev/null || die "switchover: RESUME failed: run scripts/topology --ha psql admin-write -c 'RESUME $DB_NAME'"
  trap - EXIT
  local paused; paused=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  wait "$request" || true
  local answer; answer="$(cat "$answer_file" "$answer_file.status" 2>/dev/null | tr -s '\n' ' ')"; rm -f "$answer_file" "$answer_file.status"
  case "$answer" in *" HTTP 200"*) ;; *) die "switchover: Patroni refused $old -> $candidate: $answer; pgbouncer-write resumed" ;; esac
  [ "$(haproxy_write_up)" = "$candidate" ] \
    || die "switchover: HAProxy does not send writes to $candidate alone after 30 s (UP: $(haproxy_write_up)); pgbouncer-write resumed"
  log "switchover $old -> $candidate: done; pgbouncer-write was paused for $paused s"
}

cmd_psql() {
  local target="${1:-pgbouncer-write}"; [ $# -gt 0 ] && shift
  case "$target" in
    super)
      local port; port="$(leader_port)"
      case "${1:-}" in node-1|node-2|node-3) port="$(node_pg_port "$1")"; shift ;; esac
      as_user psql -X -h "$RUN_DIR" -p "$port" -U postgres -d "$DB_NAME" "$@" ;;
    admin-write) admin_psql "$PGB_WRITE_PORT" "$@" ;;
    admin-read) admin_psql "$PGB_READ_PORT" "$@" ;;
    *) app_psql "$(port_of "$target")" "$@" ;;
  esac
}
