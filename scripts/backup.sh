# shellcheck shell=bash
# Continuous archiving, backups and point-in-time recovery with pgBackRest, for the seed
# topology; sourced by scripts/topology (which defines STATE_DIR, CONF_DIR, as_user, ...).
#
# One repository on local disk ($STATE_DIR/backups), one stanza ("payments"). The
# primary archives every WAL segment there (archive_command = pgbackrest archive-push,
# synchronous: a segment counts as archived only once it is in the repository) and at
# least every ARCHIVE_TIMEOUT seconds while anything is written, so a lost data
# directory loses at most that much. Backups are taken from the primary.

STANZA=payments
BACKUP_DIR="$STATE_DIR/backups"
PGBR_CONF="$CONF_DIR/pgbackrest.conf"
# The most a restore to the latest archived WAL can lose when the primary's disk is gone:
# the segment being written when it went, switched at most this often while busy.
ARCHIVE_TIMEOUT="${ARCHIVE_TIMEOUT:-10}"
# How far a restore moves the payment id sequence ahead (more than any lost interval hands out).
ID_JUMP="${ID_JUMP:-1000000}"

pgbackrest_as() { as_user pgbackrest --config="$PGBR_CONF" --stanza="$STANZA" "$@"; }

render_backup_config() {
  mkdir -p "$BACKUP_DIR" "$RUN_DIR/pgbackrest" "$STATE_DIR/pgbackrest-spool"
  [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$BACKUP_DIR" "$RUN_DIR/pgbackrest" "$STATE_DIR/pgbackrest-spool"
  # lz4: the fastest of the Debian build's codecs (a 2.3 GB database backs up to 0.64 GB
  # in 15 s on 2 cores); one process, so a backup under load leaves a core to the payments.
  cat > "$PGBR_CONF" <<EOF
[global]
repo1-path=$BACKUP_DIR
repo1-retention-full=2
log-path=$LOG_DIR
lock-path=$RUN_DIR/pgbackrest
spool-path=$STATE_DIR/pgbackrest-spool
compress-type=lz4
process-max=1
start-fast=y
archive-timeout=120
log-level-console=warn
log-level-file=info

# A segment closed early by archive_timeout is mostly zeros: 69 KB in lz4, under 1 KB in
# zstd (level 1), which is what keeps a quiet day's archive small.
[global:archive-push]
compress-type=zst
compress-level=1
# The slots' own bound (max_slot_wal_keep_size): past it an archive that cannot keep up
# drops segments (and says so) rather than filling the disk.
archive-push-queue-max=4GiB

$(pg_entries)
EOF
  [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$PGBR_CONF"
  return 0
}

# The stanza's nodes: the seed's primary; in HA mode every Patroni node (pgBackRest asks
# each and backs up whichever is not in recovery: the leader, wherever it is).
pg_entries() {
  echo "[$STANZA]"
  if [ "$HA" = 1 ]; then
    local i=1 node
    for node in "${NODES[@]}"; do
      printf 'pg%d-path=%s\npg%d-port=%s\npg%d-socket-path=%s\npg%d-user=postgres\n' \
        "$i" "$(data_of "$node")" "$i" "$(node_pg_port "$node")" "$i" "$RUN_DIR" "$i"
      i=$((i + 1))
    done
  else
    printf 'pg1-path=%s\npg1-port=%s\npg1-socket-path=%s\npg1-user=postgres\n' "$(data_of primary)" "$PRIMARY_PORT" "$RUN_DIR"
  fi
}

# HA mode: a node's archive_command names its own data directory (pgBackRest resolves %p
# against pg1-path): one configuration file per node, beside the shared one.
node_backup_config() { # node
  local f="$CONF_DIR/pgbackrest-$1.conf"
  sed -n "1,/^\[$STANZA\]/p" "$PGBR_CONF" | sed '$d' > "$f"
  printf '[%s]\npg1-path=%s\npg1-port=%s\npg1-socket-path=%s\npg1-user=postgres\n' \
    "$STANZA" "$(data_of "$1")" "$(node_pg_port "$1")" "$RUN_DIR" >> "$f"
  [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$f"
  return 0
}

# The primary's archiving settings (its instance.conf).
archive_settings() {
  cat <<EOF
archive_mode = on
archive_command = 'pgbackrest --config=$PGBR_CONF --stanza=$STANZA archive-push %p'
archive_timeout = $ARCHIVE_TIMEOUT
EOF
}

# HA mode: the same settings in a node's Patroni configuration (its local parameters
# override the cluster's; only the leader archives).
patroni_archive_settings() { # node, rendered patroni.yml
  node_backup_config "$1"
  python3 - "$2" "pgbackrest --config=$CONF_DIR/pgbackrest-$1.conf --stanza=$STANZA archive-push %p" "$ARCHIVE_TIMEOUT" <<'PY'
import sys, yaml
path, command, timeout = sys.argv[1:4]
with open(path) as f: config = yaml.safe_load(f)
parameters = config.setdefault("postgresql", {}).setdefault("parameters", {})
parameters.update({"archive_mode": "on", "archive_command": command, "archive_timeout": int(timeout)})
with open(path, "w") as f: yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
PY
}

# The node that writes: the seed's primary, or the HA leader.
writer_port() { if [ "$HA" = 1 ]; then leader_port; elif running primary; then echo "$PRIMARY_PORT"; fi; }

has_stanza() { [ -s "$BACKUP_DIR/backup/$STANZA/backup.info" ]; }

# Creates the stanza once (idempotent), then checks that a segment reaches the repository.
stanza_ensure() {
  pgbackrest_as stanza-create >>"$LOG_DIR/pgbackrest-console.log" 2>&1 \
    || { tail -5 "$LOG_DIR/pgbackrest-console.log" >&2
         die "pgbackrest stanza-create failed: if $BACKUP_DIR holds another cluster's backups, move it away"; }
  pgbackrest_as check >>"$LOG_DIR/pgbackrest-console.log" 2>&1 \
    || { tail -5 "$LOG_DIR/pgbackrest-console.log" >&2; die "pgbackrest check failed: WAL does not reach $BACKUP_DIR"; }
}

cmd_backup() { # [full|incr|diff]
  local type="${1:-incr}"
  case "$type" in full|incr|diff) ;; *) die "usage: backup [full|incr|diff] (default incr: a full one if there is none yet)" ;; esac
  [ -n "$(writer_port)" ] || die "backup: no primary (leader) is running"
  has_stanza || die "backup: no stanza in $BACKUP_DIR (run up first)"
  local t0; t0=$(date +%s.%N)
  pgbackrest_as --type="$type" backup 2>&1 | sed 's/^/pgbackrest: /' >&2
  [ "${PIPESTATUS[0]}" = 0 ] || die "backup failed (log: $LOG_DIR/$STANZA-backup.log)"
  log "$type backup done in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  cmd_backups | tail -n 2
}

# Every backup with its times, sizes and WAL range, then the archive's range and health.
cmd_backups() {
  has_stanza || die "backups: no stanza in $BACKUP_DIR (run up first)"
  pgbackrest_as --output=json info | python3 -c '
import json, sys, datetime
def t(s): return datetime.datetime.fromtimestamp(s, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
def mb(n): return "%.1f MB" % (n / 1e6)
info = json.load(sys.stdin)[0]
for a in info.get("archive", []):
    print("archive: %s .. %s (timeline %s)" % (a.get("min"), a.get("max"), (a.get("min") or "????????")[:8].lstrip("0") or "0"))
print("%-24s %-5s %-19s %-19s %6s %10s %10s %10s  %s" % ("LABEL", "TYPE", "START (UTC)", "STOP (UTC)", "SECS", "DB", "DELTA", "REPO", "WAL"))
for b in info.get("backup", []):
    ts, i, w = b["timestamp"], b["info"], b["archive"]
    print("%-24s %-5s %-19s %-19s %6d %10s %10s %10s  %s..%s" % (b["label"], b["type"], t(ts["start"]), t(ts["stop"]),
          ts["stop"] - ts["start"], mb(i["size"]), mb(i["delta"]), mb(i["repository"]["delta"]), w["start"], w["stop"]))
'
  local port; port="$(writer_port)"
  if [ -n "$port" ]; then
    super_psql "$port" -d postgres -tAc "SELECT 'archiver: ' || archived_count || ' archived, last ' || COALESCE(last_archived_wal, 'none')
        || COALESCE(' ' || round(EXTRACT(EPOCH FROM now() - last_archived_time)) || ' s ago', '')
        || ', ' || failed_count || ' failed' || COALESCE(' (last ' || last_failed_wal || ')', '') FROM pg_stat_archiver"
  fi
}

# Where a restore may stop: a time (PostgreSQL's timestamptz syntax; the moment just
# before a mistake) or latest (every archived segment).
# Checks the target before anything stops; sets RESTORE_TARGET (pgBackRest's options).
restore_target() { # --to TIME|latest [--force] [--no-backup]
  [ "${1:-}" = "--to" ] && [ -n "${2:-}" ] || die "usage: restore --to TIME|latest [--force] [--no-backup] (TIME e.g. '2026-12-05 11:20:00+00')"
  local to="$2" option
  RESTORE_FORCE=0 RESTORE_BACKUP=1 RESTORE_LATEST=0
  [ "$to" = latest ] && RESTORE_LATEST=1
  shift 2
  for option in "$@"; do
    case "$option" in --force) RESTORE_FORCE=1 ;; --no-backup) RESTORE_BACKUP=0 ;; *) die "restore: unknown option '$option' (--force, --no-backup)" ;; esac
  done
  # A data directory that survived holds WAL the archive may not have yet: restoring
  # "latest" over it would throw that away. Start it instead (or say --force).
  if [ "$to" = latest ] && [ "$RESTORE_FORCE" = 0 ]; then
    local node nodes=(primary); [ "$HA" = 1 ] && nodes=("${NODES[@]}")
    for node in "${nodes[@]}"; do
      if [ -s "$(data_of "$node")/PG_VERSION" ] && ! running "$node"; then
        die "restore: $node's data directory is still there ($(data_of "$node")): start it ('scripts/topology$([ "$HA" = 1 ] && echo ' --ha') up'); restoring to latest would discard the WAL not archived yet (--force to restore anyway)"
      fi
    done
  fi
  has_stanza || die "restore: no backup repository at $BACKUP_DIR"
  ARCHIVE_MAX="$(pgbackrest_as --output=json info | python3 -c 'import json,sys; a=json.load(sys.stdin)[0].get("archive",[]); print(max((x.get("max") or "" for x in a), key=lambda n: n[8:], default=""))' 2>/dev/null || true)"
  if [ "$to" = latest ]; then RESTORE_TARGET=(--type=default)
  else
    # pgBackRest reads only 'YYYY-MM-DD HH:MM:SS[.frac]+HH' (and an offset-less time in the
    # machine's zone, not PostgreSQL's): the time is rewritten in UTC first, and checked
    # against the backups and the clock, before anything is stopped.
    local utc; utc="$(normalise_time "$to")" || die "restore: '$to' is not a time (e.g. '2026-12-05 11:20:00+00')"
    local target_s oldest_s; target_s="$(date -u -d "$utc" +%s)"
    oldest_s="$(pgbackrest_as --output=json info | python3 -c 'import json,sys; b=json.load(sys.stdin)[0].get("backup",[]); print(min((x["timestamp"]["stop"] for x in b), default=""))')"
    [ -n "$oldest_s" ] || die "restore: no backup yet (scripts/topology backup full)"
    [ "$target_s" -ge "$oldest_s" ] || die "restore: $utc is before the end of the oldest backup ($(date -u -d "@$oldest_s" '+%F %T+00')): nothing to start from"
    [ "$target_s" -le "$(date +%s)" ] || die "restore: $utc is in the future"
    RESTORE_TARGET=(--type=time "--target=$utc" --target-action=promote)
  fi
}

# Payments made after the target and lost keep their ids at the provider and with their
# clients: new payments must never take one (a client's GET /v1/payments/{id} would answer
# with another payment). The id sequence jumps ahead of anything the lost interval can
# have handed out; `payments reconcile --adopt` gives each lost charged payment its old id
# back. (Partitions cover 20 million ids ahead: the jump stays inside.)
# The lost interval's ids are known exactly when the old primary still answers (an
# operator's mistake): OLD_LAST_ID, read before it stops, and the jump is past it too.
jump_payment_ids() { # port
  local floor="${OLD_LAST_ID:-0}"
  [[ "$floor" =~ ^[0-9]+$ ]] || floor=0
  super_psql "$1" -d "$DB_NAME" -tAc "SELECT setval('payment_ids', greatest((SELECT last_value FROM payment_ids), $floor) + $ID_JUMP)" >/dev/null \
    || die "could not move the payment id sequence ahead"
  # Partitions for the ids from here (and for the lost payments adoption brings back),
  # before anything lands in a default partition, which would then block its range.
  super_psql "$1" -d "$DB_NAME" -tAc "SELECT payment_history_add_partitions(2), ledger_entries_add_partitions(2)" >/dev/null \
    || die "could not create the partitions ahead of the moved id sequence"
  log "payment ids continue $ID_JUMP past the restored sequence$([ "$floor" -gt 0 ] && echo " and the old primary's last id ($floor)") (lost payments keep theirs)"
}

# The old writer's last payment id, while it still answers (empty otherwise).
read_old_last_id() { # port
  OLD_LAST_ID="$(super_psql "$1" -d "$DB_NAME" -tAc "SELECT last_value FROM payment_ids" 2>/dev/null || true)"
}

cmd_restore() { # --to TIME|latest
  restore_target "$@"
  [ "$HA" = 1 ] && { cmd_restore_ha; return; }
  local target=("${RESTORE_TARGET[@]}")
  local t0=$SECONDS
  # No client writes from here: a write after the last archived segment would be lost
  # (the poolers start again at the end).
  stop_service pgbouncer-write; stop_service pgbouncer-read
  # A primary still running: everything it wrote goes to the archive first, so a target
  # just before a mistake made a moment ago is reachable.
  OLD_LAST_ID=""
  if running primary; then
    read_old_last_id "$PRIMARY_PORT"
    log "archiving the primary's current WAL segment"
    pgbackrest_as check >>"$LOG_DIR/pgbackrest-console.log" 2>&1 || {
      [ "$RESTORE_FORCE" = 1 ] || { start_service pgbouncer-write; start_service pgbouncer-read
        die "restore: the primary's current WAL did not reach the archive (pgbackrest check failed; $LOG_DIR/pgbackrest-console.log): fix archiving first, or --force to lose what is not archived (nothing was stopped)"; }
      log "warning: --force: the last segment may not be archived"; }
  fi
  local s
  for s in replica-2 replica-1 primary; do stop_service "$s"; done
  local data; data="$(data_of primary)"
  # A crashed primary's postmaster.pid stops pgBackRest; nothing runs (checked above).
  rm -f "$data/postmaster.pid"
  local delta=()
  if [ -s "$data/PG_VERSION" ]; then delta=(--delta)
  else mkdir -p "$data"; [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$STATE_DIR/primary" "$data"; chmod 700 "$data"; fi
  log "restoring the primary from $BACKUP_DIR (${target[*]})"
  pgbackrest_as "${delta[@]}" "${target[@]}" restore >>"$LOG_DIR/pgbackrest-console.log" 2>&1 \
    || { tail -5 "$LOG_DIR/pgbackrest-console.log" >&2; die "pgbackrest restore failed"; }
  write_instance_conf primary "$PRIMARY_PORT"
  local log_from; log_from=$(( $(wc -l < "$LOG_DIR/primary.log" 2>/dev/null || echo 0) + 1 ))
  as_user "$PG_BIN/pg_ctl" -D "$data" -l "$LOG_DIR/primary.log" -w -t 600 start >/dev/null \
    || { tail -20 "$LOG_DIR/primary.log" >&2; die "the restored primary did not start (log: $LOG_DIR/primary.log)"; }
  until writer_writable; do
    running primary || { tail -20 "$LOG_DIR/primary.log" >&2; die "the restored primary stopped during recovery (log: $LOG_DIR/primary.log)"; }
    [ $((SECONDS - t0)) -lt 900 ] || { tail -20 "$LOG_DIR/primary.log" >&2; die "the restored primary did not leave recovery in 900 s"; }
    sleep 0.5
  done
  local reached; reached="$(tail -n "+$log_from" "$LOG_DIR/primary.log" | grep -Eo '(recovery stopping before|last completed transaction was at log time).*' | tail -1 || true)"
  log "primary restored and promoted in $((SECONDS - t0)) s; ${reached:-recovery ended where the WAL it could read ended}"
  # pgBackRest's recovery target stays in postgresql.auto.conf after the promotion, and
  # pg_basebackup copies that file to the replicas: each would stop replaying and promote
  # itself at the first commit past the target. Gone before they are cloned.
  super_psql "$PRIMARY_PORT" -d postgres -tA >/dev/null <<'SQL' || die "could not remove the recovery target from the primary's settings"
ALTER SYSTEM RESET recovery_target_time;
ALTER SYSTEM RESET recovery_target_action;
ALTER SYSTEM RESET recovery_target;
ALTER SYSTEM RESET recovery_target_xid;
ALTER SYSTEM RESET recovery_target_lsn;
ALTER SYSTEM RESET recovery_target_name;
ALTER SYSTEM RESET restore_command;
SELECT pg_reload_conf();
SQL
  check_reached_archive_end "$PRIMARY_PORT"
  jump_payment_ids "$PRIMARY_PORT"
  # The replicas' data is from the lost timeline: each is cloned again from the primary.
  for s in replica-1 replica-2; do
    rm -rf "${STATE_DIR:?}/$s/data"
    replica_up "$s"
  done
  write_userlist
  for s in haproxy pgbouncer-write pgbouncer-read; do running "$s" || start_service "$s"; done
  wait_ready || die "the restored topology did not become ready"
  log "restore done in $((SECONDS - t0)) s (replicas cloned again); timeline $(super_psql "$PRIMARY_PORT" -d postgres -tAc 'SELECT timeline_id FROM pg_control_checkpoint()')"
  backup_after_restore
  restore_verdict
}

# Exit 3 (after everything is up) when recovery stopped short of the archive's end.
restore_verdict() { [ -z "${RESTORE_SHORT:-}" ] || { echo "restore: $RESTORE_SHORT" >&2; exit 3; }; }

# Restoring to latest replays the archive until a segment is missing, then promotes: a
# hole in the archive (a segment lost from the repository) would end the recovery early
# without a word. The new timeline's switch point is checked against the archive's last
# segment, read before the restore: short of it is said loudly (payments after the hole
# come back only through `payments reconcile --adopt`).
check_reached_archive_end() { # port
  [ "$RESTORE_LATEST" = 1 ] && [ -n "$ARCHIVE_MAX" ] || return 0
  local switch_lsn switch_seg
  switch_lsn="$(super_psql "$1" -d postgres -tAc "SELECT split_part(split_part(pg_read_file('pg_wal/' || lpad(upper(to_hex(timeline_id)), 8, '0') || '.history'), E'\n', -2), E'\t', 2) FROM pg_control_checkpoint()" 2>/dev/null || true)"
  [ -n "$switch_lsn" ] || { log "warning: could not read the new timeline's switch point: check that recovery reached $ARCHIVE_MAX"; return 0; }
  switch_seg="$(super_psql "$1" -d postgres -tAc "SELECT pg_walfile_name('$switch_lsn'::pg_lsn)")"
  if [[ "${switch_seg:8}" < "${ARCHIVE_MAX:8}" ]]; then
    RESTORE_SHORT="recovery ended at $switch_lsn (segment ${switch_seg:8}) but the archive holds up to $ARCHIVE_MAX: a segment is missing from the archive, and what came after it is not restored"
    log "WARNING: $RESTORE_SHORT; run 'payments reconcile --adopt' for the charged payments, and see docs/recovery.md"
  else
    log "recovery replayed the archive to its end ($ARCHIVE_MAX)"
  fi
}

# A new timeline starts at the restore: a full backup of it, so the next restore does not
# replay from a backup of the old one through the switch (--no-backup: later, by hand).
backup_after_restore() {
  [ "$RESTORE_BACKUP" = 1 ] || { log "no backup taken after the restore (--no-backup): take one ('scripts/topology backup full')"; return 0; }
  local t0=$SECONDS
  log "taking a full backup of the restored cluster (--no-backup skips it)"
  if ( cmd_backup full ) >>"$LOG_DIR/pgbackrest-console.log" 2>&1; then log "full backup of the new timeline done in $((SECONDS - t0)) s"
  else log "warning: the backup after the restore failed ($LOG_DIR/pgbackrest-console.log): take one by hand"; fi
}

# Whether the node that writes (the seed's primary, the HA leader) is out of recovery.
writer_writable() { local p; p="$(writer_port)" && [ -n "$p" ] && [ "$(super_psql "$p" -d postgres -tAc 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ]; }

# TIME in UTC as pgBackRest reads it, parsed by PostgreSQL when a node runs (its
# timestamptz syntax, an offset-less time in UTC), else by date(1); fails if neither can.
normalise_time() {
  local s out nodes=(primary replica-1 replica-2)
  [ "$HA" = 1 ] && nodes=("${NODES[@]}")
  for s in "${nodes[@]}"; do
    running "$s" || continue
    # The first node that answers decides (an error from it means the time is not one).
    if super_psql "$(port_of "$s")" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
      out="$(echo "SELECT to_char(:'t'::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'" \
        | PGTZ=UTC super_psql "$(port_of "$s")" -d postgres -tA -v t="$1" 2>/dev/null)" && [ -n "$out" ] && { echo "$out"; return 0; }
      return 1
    fi
  done
  TZ=UTC date -u -d "$1" '+%Y-%m-%d %H:%M:%S.%6N+00' 2>/dev/null
}

# HA mode: the cluster re-bootstrapped from the backup through Patroni. Every node stops,
# the cluster leaves etcd, the data directories go aside, node-1 bootstraps with a custom
# method that runs `pgbackrest restore` (its recovery settings kept: Patroni waits for the
# end of recovery, promotion at the target), then node-2 and node-3 are cloned from it.
cmd_restore_ha() {
  local t0=$SECONDS s node
  stop_service pgbouncer-write; stop_service pgbouncer-read
  OLD_LAST_ID=""
  local writer; writer="$(leader_port 2>/dev/null || true)"
  [ -n "$writer" ] && read_old_last_id "$writer"
  if [ -n "$(leader_port 2>/dev/null)" ]; then
    log "archiving the leader's current WAL segment"
    pgbackrest_as check >>"$LOG_DIR/pgbackrest-console.log" 2>&1 || log "warning: the last segment may not be archived (pgbackrest check failed)"
  fi
  stop_service haproxy
  # The leader stops last: a replica whose Patroni still ran after the leader went would
  # take the leader key and write (and archive) a timeline of its own.
  local leading; leading="$(leader)"
  for node in node-3 node-2 node-1; do [ "$node" = "$leading" ] || stop_service "$node"; done
  [ -n "$leading" ] && stop_service "$leading"
  # The cluster's keys in etcd go (leader, members, initialize): node-1 may bootstrap anew.
  ETCDCTL_API=3 etcdctl --endpoints="$(etcd_hosts)" del --prefix /payments/payments/ >/dev/null \
    || die "could not remove the cluster's keys from etcd"
  for node in "${NODES[@]}"; do
    rm -rf "${STATE_DIR:?}/$node/data.pre-restore"
    [ -e "$(data_of "$node")" ] && mv "$(data_of "$node")" "$STATE_DIR/$node/data.pre-restore"
  done
  cat > "$CONF_DIR/patroni-restore.sh" <<EOF
#!/usr/bin/env bash
# Patroni's custom bootstrap (scripts/backup.sh): pgbackrest restore into --datadir.
set -euo pipefail
datadir=""
for a in "\$@"; do case "\$a" in --datadir=*|--data_dir=*|--data-dir=*) datadir="\${a#*=}" ;; esac; done
[ -n "\$datadir" ] || { echo "no --datadir" >&2; exit 1; }
mkdir -p "\$datadir"; chmod 700 "\$datadir"
exec pgbackrest --config="$CONF_DIR/pgbackrest-node-1.conf" --stanza=$STANZA --pg1-path="\$datadir" $(printf '%q ' "${RESTORE_TARGET[@]}") restore
EOF
  chmod 755 "$CONF_DIR/patroni-restore.sh"
  [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$CONF_DIR/patroni-restore.sh"
  python3 - "$CONF_DIR/node-1.yml" "$CONF_DIR/patroni-restore.sh" <<'PY'
import sys, yaml
path, script = sys.argv[1:3]
with open(path) as f: config = yaml.safe_load(f)
bootstrap = config.setdefault("bootstrap", {})
bootstrap["method"] = "pgbackrest"
bootstrap["pgbackrest"] = {"command": script, "keep_existing_recovery_conf": True}
with open(path, "w") as f: yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
PY
  log "re-bootstrapping the cluster on node-1 from $BACKUP_DIR (${RESTORE_TARGET[*]})"
  node_start node-1
  until writer_writable; do
    running node-1 || { tail -20 "$LOG_DIR/node-1.log" >&2; die "node-1 stopped while bootstrapping from the backup (log: $LOG_DIR/node-1.log)"; }
    [ $((SECONDS - t0)) -lt 900 ] || { tail -20 "$LOG_DIR/node-1.log" >&2; die "no leader after 900 s of restore"; }
    sleep 1
  done
  log "node-1 restored and leading in $((SECONDS - t0)) s"
  # Its configuration without the bootstrap method again (a later bootstrap is initdb's).
  render_configs
  check_reached_archive_end "$(leader_port)"
  jump_payment_ids "$(leader_port)"
  cmd_up
  for node in "${NODES[@]}"; do rm -rf "${STATE_DIR:?}/$node/data.pre-restore"; done
  log "restore done in $((SECONDS - t0)) s (node-2 and node-3 cloned again); timeline $(ha_timeline 2>/dev/null || echo '?')"
  backup_after_restore
  restore_verdict
}
