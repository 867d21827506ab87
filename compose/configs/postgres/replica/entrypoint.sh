#!/usr/bin/env bash
# A streaming replica. On first start (empty $PGDATA) it clones the primary with
# `pg_basebackup -R -C -S <slot>`; later starts reuse their data.
#   entrypoint.sh [postgres args...]   clone if needed, then exec postgres (Compose)
#   entrypoint.sh --clone-only         clone if needed, then exit (local topology)
# Environment: PGDATA, PRIMARY_HOST, PRIMARY_PORT, REPL_USER, REPL_PASSWORD,
# SLOT_NAME, APPLICATION_NAME.
set -euo pipefail
: "${PGDATA:?}" "${PRIMARY_HOST:?}" "${SLOT_NAME:?}" "${APPLICATION_NAME:?}"
PRIMARY_PORT="${PRIMARY_PORT:-5432}"
REPL_USER="${REPL_USER:-repl_user}"
export PGPASSWORD="${REPL_PASSWORD:-repl_password}"

if [ "$(id -u)" = 0 ]; then
  # The postgres image starts as root: fix ownership, then drop to postgres.
  mkdir -p "$PGDATA" && chown -R postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "replica $APPLICATION_NAME: waiting for the primary at $PRIMARY_HOST:$PRIMARY_PORT"
  for _ in $(seq 1 120); do
    pg_isready -q -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" && break
    sleep 1
  done
  # A slot left from an earlier clone of this replica would make -C fail.
  pg_receivewal -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPL_USER" --drop-slot -S "$SLOT_NAME" \
    >/dev/null 2>&1 || true
  echo "replica $APPLICATION_NAME: pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT, slot $SLOT_NAME"
  rm -rf "${PGDATA:?}"/*
  pg_basebackup -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPL_USER" -D "$PGDATA" \
    -R -C -S "$SLOT_NAME" -X stream --checkpoint=fast \
    -d "application_name=$APPLICATION_NAME"
  chmod 700 "$PGDATA"
fi

if [ "${1:-}" = "--clone-only" ]; then exit 0; fi
exec postgres "$@"
