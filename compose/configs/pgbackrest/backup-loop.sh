#!/usr/bin/env bash
# The Compose backup service: once the primary answers, creates the stanza (idempotent)
# and checks that WAL arrives, then takes a full backup every BACKUP_FULL_HOURS (24) and an
# incremental one every BACKUP_INCR_MINUTES (60). It shares the primary's data volume
# (read-only), its socket folder and the repository volume (pgBackRest's local mode: no
# SSH or TLS between them).
set -euo pipefail
PGBR=(pgbackrest --config=/etc/payments/pgbackrest/pgbackrest.conf --stanza=payments)
until pg_isready -q -h /var/run/postgresql; do sleep 2; done
"${PGBR[@]}" stanza-create
"${PGBR[@]}" check
full_every=$(( ${BACKUP_FULL_HOURS:-24} * 3600 )) incr_every=$(( ${BACKUP_INCR_MINUTES:-60} * 60 ))
last_full=0
while :; do
  now=$(date +%s)
  if [ $((now - last_full)) -ge "$full_every" ]; then "${PGBR[@]}" --type=full backup && last_full=$now
  else "${PGBR[@]}" --type=incr backup || true; fi
  "${PGBR[@]}" info
  sleep "$incr_every"
done
