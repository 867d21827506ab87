#!/usr/bin/env bash
# Run by Patroni once, on the node that initialises the cluster, after initdb: the roles
# and database of the seed (roles.psql). Patroni passes a connection string as $1.
set -euo pipefail
psql "$1" -v ON_ERROR_STOP=1 -v db_user="$DB_USER" -v db_password="$DB_PASSWORD" -v db_name="$DB_NAME" \
  -v repl_user="$REPL_USER" -v repl_password="$REPL_PASSWORD" -v check_user="$HAPROXY_CHECK_USER" \
  -f "$(dirname "$0")/roles.psql"
