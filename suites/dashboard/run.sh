#!/usr/bin/env bash
# The dashboard (GET /) in a real browser: Debian's chromium and chromium-driver with
# Selenium from PyPI, headless, against a serve on the running local topology (seed
# mode). Installs what is missing. Checks: the page goes live without console errors,
# both replica tiles say streaming, the poolers' tiles show SHOW POOLS, the throughput
# series moves while jobs run, a replica stopped turns its tile down and back up, the
# page reconnects after the server restarts, renders at a phone's width, says when the
# poolers' credential is missing, and shows an empty database. Saves screenshots.
#   suites/dashboard/run.sh [--port-offset N]     (SHOTS=dir keeps the screenshots)
set -uo pipefail
PORT_OFFSET="${PORT_OFFSET:-0}"
if [ "${1:-}" = "--port-offset" ]; then PORT_OFFSET="$2"; shift 2; fi
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO"
BIN="${BIN:-$REPO/.build/debug/payments}"
PORT=$((8080 + PORT_OFFSET + 64))   # and the two after it (beside the fault suites' serve, +60)
WORK="$(mktemp -d /tmp/payments-dashboard.XXXXXX)"
SHOTS="${SHOTS:-$WORK}"
DB="empty_$RANDOM$RANDOM"
mkdir -p "$SHOTS"
cleanup() {
  "${TOPO[@]}" psql super -q -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
  "${TOPO[@]}" start replica-1 >/dev/null 2>&1
}
trap cleanup EXIT

# Chromium and its driver from Debian (the same version, so they match); Selenium from PyPI.
if ! command -v chromium >/dev/null || ! [ -x /usr/bin/chromedriver ]; then
  echo "dashboard: installing chromium and chromium-driver (Debian)" >&2
  "$(dirname "${BASH_SOURCE[0]}")/../../scripts/apt-install" chromium chromium-driver \
    || { echo "dashboard: installing chromium chromium-driver failed" >&2; exit 1; }
fi
# 4.51.0: 4.52.0 needs a certifi (>= 2026.10.23) the package index here does not have.
python3 -c "import selenium" 2>/dev/null || python3 -m pip install -q "selenium==4.51.0" \
  || { echo "dashboard: pip install selenium failed" >&2; exit 1; }

[ -x "$BIN" ] || { echo "dashboard: no binary at $BIN (BIN=...)" >&2; exit 1; }
eval "$("${TOPO[@]}" env)"
"${TOPO[@]}" status >/dev/null 2>&1 || { echo "dashboard: the topology at offset $PORT_OFFSET is not up" >&2; exit 1; }

# The payments database migrated (a no-op when it is), so the suite runs on any topology.
"$BIN" migrate >"$WORK/migrate-main.log" 2>&1 || { tail -5 "$WORK/migrate-main.log" >&2; echo "dashboard: migrate failed" >&2; exit 1; }

# An empty database on the primary (migrated, no job), for the page's empty state.
"${TOPO[@]}" psql super -q -c "CREATE DATABASE $DB OWNER ${DB_USER:-db_user}" >/dev/null \
  || { echo "dashboard: could not create $DB" >&2; exit 1; }
EMPTY_DSN="postgres://${DB_USER:-db_user}:${DB_PASSWORD:-db_password}@127.0.0.1:$((5432 + PORT_OFFSET))/$DB?sslmode=disable"
"$BIN" migrate --write-dsn "$EMPTY_DSN" --read-dsn "$EMPTY_DSN" >"$WORK/migrate.log" 2>&1 \
  || { tail -5 "$WORK/migrate.log" >&2; echo "dashboard: migrating $DB failed" >&2; exit 1; }

python3 "$REPO/suites/dashboard/browser_test.py" --bin "$BIN" --port "$PORT" \
  --topology "$REPO/scripts/topology --port-offset $PORT_OFFSET" --shots "$SHOTS" --logs "$WORK" --empty-dsn "$EMPTY_DSN"
rc=$?
echo "dashboard: screenshots in $SHOTS; logs in $WORK"
exit $rc
