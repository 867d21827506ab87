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

pgbackrest_as() { as_user pgbackrest --config="$PGBR_CONF" --stanza="$STANZA" "$@"; }

render_backup_config() {
  mkdir -p "$BACKUP_DIR" "$RUN_DIR/pgbackrest"
  [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$BACKUP_DIR" "$RUN_DIR/pgbackrest"
  # lz4: the fastest of the Debian build's codecs (a 2.3 GB database backs up to 0.64 GB
  # in 15 s on 2 cores); one process, so a backup under load leaves a core to the payments.
  cat > "$PGBR_CONF" <<EOF
[global]
repo1-path=$BACKUP_DIR
repo1-retention-full=2
log-path=$LOG_DIR
lock-path=$RUN_DIR/pgbackrest
compress-type=lz4
process-max=1
start-fast=y
archive-timeout=120
log-level-console=warn
log-level-file=info

[$STANZA]
pg1-path=$(data_of primary)
pg1-port=$PRIMARY_PORT
pg1-socket-path=$RUN_DIR
pg1-user=postgres
EOF
  [ "$(id -u)" = 0 ] && chown "$RUN_AS": "$PGBR_CONF"
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
  running primary || die "backup: the primary is not running"
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
  if running primary; then
    super_psql "$PRIMARY_PORT" -d postgres -tAc "SELECT 'archiver: ' || archived_count || ' archived, last ' || COALESCE(last_archived_wal, 'none')
        || COALESCE(' ' || round(EXTRACT(EPOCH FROM now() - last_archived_time)) || ' s ago', '')
        || ', ' || failed_count || ' failed' || COALESCE(' (last ' || last_failed_wal || ')', '') FROM pg_stat_archiver"
  fi
}

# Where a restore may stop: a time (PostgreSQL's timestamptz syntax; the moment just
# before a mistake) or latest (every archived segment).
cmd_restore() { # --to TIME|latest
  [ "${1:-}" = "--to" ] && [ -n "${2:-}" ] || die "usage: restore --to TIME|latest (TIME e.g. '2026-12-05 11:20:00+00')"
  local to="$2" target=()
  has_stanza || die "restore: no backup repository at $BACKUP_DIR"
  if [ "$to" = latest ]; then target=(--type=default)
  else
    # Checked by PostgreSQL itself, so a typo stops here and not after the cluster is gone.
    super_psql_any "SELECT '$to'::timestamptz" >/dev/null 2>&1 || date -d "$to" >/dev/null 2>&1 \
      || die "restore: '$to' is not a time (e.g. '2026-12-05 11:20:00+00')"
    target=(--type=time "--target=$to" --target-action=promote)
  fi
  local t0=$SECONDS
  # A primary still running: everything it wrote goes to the archive first, so a target
  # just before a mistake made a moment ago is reachable.
  if running primary; then
    log "archiving the primary's current WAL segment"
    pgbackrest_as check >>"$LOG_DIR/pgbackrest-console.log" 2>&1 || log "warning: the last segment may not be archived (pgbackrest check failed)"
  fi
  local s
  for s in replica-2 replica-1 primary; do stop_service "$s"; done
  local data; data="$(data_of primary)"
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
  wait_for "the restored primary to end recovery" 600 primary_writable \
    || { tail -20 "$LOG_DIR/primary.log" >&2; die "the restored primary did not leave recovery"; }
  local reached; reached="$(tail -n "+$log_from" "$LOG_DIR/primary.log" | grep -Eo '(recovery stopping before|last completed transaction was at log time).*' | tail -1 || true)"
  log "primary restored and promoted in $((SECONDS - t0)) s; ${reached:-recovery reached the end of the archive}"
  # The replicas' data is from the lost timeline: each is cloned again from the primary.
  for s in replica-1 replica-2; do
    rm -rf "${STATE_DIR:?}/$s/data"
    replica_up "$s"
  done
  write_userlist
  for s in haproxy pgbouncer-write pgbouncer-read; do running "$s" || start_service "$s"; done
  wait_ready || die "the restored topology did not become ready"
  log "restore done in $((SECONDS - t0)) s (replicas cloned again); timeline $(super_psql "$PRIMARY_PORT" -d postgres -tAc 'SELECT timeline_id FROM pg_control_checkpoint()')"
}

primary_writable() { [ "$(super_psql "$PRIMARY_PORT" -d postgres -tAc 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ]; }

# A throwaway parse of a time by any running node (or none: then date(1) decides).
super_psql_any() {
  local s
  for s in primary replica-1 replica-2; do
    if running "$s"; then super_psql "$(port_of "$s")" -d postgres -tAc "$1"; return; fi
  done
  return 1
}
