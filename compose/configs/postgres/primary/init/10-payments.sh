#!/usr/bin/env bash
# Compose: runs once, on the primary's first start (docker-entrypoint-initdb.d).
set -euo pipefail
cfg=/etc/payments/postgres
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v db_user="${DB_USER:-db_user}" -v db_password="${DB_PASSWORD:-db_password}" \
  -v db_name="${DB_NAME:-resilient_payment_processor}" \
  -v repl_user="${REPL_USER:-repl_user}" -v repl_password="${REPL_PASSWORD:-repl_password}" \
  -v check_user="${HAPROXY_CHECK_USER:-haproxy_check}" \
  -f "$cfg/primary/roles.psql"
sed -e "s|@CLIENT_CIDR@|${CLIENT_CIDR:-172.30.0.0/24}|g" -e "s|@REPL_USER@|${REPL_USER:-repl_user}|g" \
  "$cfg/pg_hba.conf" > "$PGDATA/pg_hba.conf"
