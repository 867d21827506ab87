#!/usr/bin/env bash
# The shipped binary on its own: the release build copied out of the build folder (as a
# container image or /usr/local/bin holds it) and run where the build folder cannot be
# seen (a private mount namespace with an empty .build/) migrates a fresh database and
# serves its OpenAPI document. Also checks that the Dockerfile builds with the same
# command as make test and make demo. Prints "N passed, N failed" last. Needs root (for
# the mount namespace), as make test runs.
#   suites/release/run.sh [--port-offset N]
# BIN: the binary to copy: the release build by default and in `make test-release`; the
# debug build in `make test` (CI), whose embedding is the same build plugin.
set -uo pipefail
PORT_OFFSET="${PORT_OFFSET:-0}"
if [ "${1:-}" = "--port-offset" ]; then PORT_OFFSET="$2"; shift 2; fi
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO"
BIN="${BIN:-$REPO/.build/release/payments}"
PORT=$((8080 + PORT_OFFSET + 80))
DB="fresh_$RANDOM$RANDOM"
WORK="$(mktemp -d /tmp/payments-release.XXXXXX)"
DSN="postgres://${DB_USER:-db_user}:${DB_PASSWORD:-db_password}@127.0.0.1:$((5432 + PORT_OFFSET))/$DB?sslmode=disable"
SERVE_PID=""
cleanup() {
  serve_stop >/dev/null 2>&1
  "${TOPO[@]}" psql super -q -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0 failed=0
check() { # name, command...
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "    ok: $name"; else failed=$((failed + 1)); echo "    FAIL: $name"; fi
}

echo "--- the Dockerfile builds with RELEASE_BUILD (${RELEASE_BUILD[*]})"
dockerfile_build() { grep -qxF "RUN ${RELEASE_BUILD[*]}" Dockerfile; }
check "Dockerfile: RUN ${RELEASE_BUILD[*]}" dockerfile_build

echo "--- a copy of $BIN, away from the build folder"
[ -x "$BIN" ] || { echo "no binary at $BIN"; exit 1; }
mkdir "$WORK/bin"
cp "$BIN" "$WORK/bin/payments"
not_linked_to_build() { ! ldd "$WORK/bin/payments" 2>/dev/null | grep -q "\.build"; }
check "the binary links nothing from .build" not_linked_to_build
# Runs the copy with .build/ hidden behind an empty tmpfs: a resource looked up in the
# build folder (as Bundle.module does) is not there.
cat > "$WORK/payments" <<WRAP
#!/bin/sh
exec unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs "\$0" && exec "\$@"' "$REPO/.build" "$WORK/bin/payments" "\$@"
WRAP
chmod +x "$WORK/payments"
hidden() {
  local seen; seen="$(unshare --mount --propagation private sh -c "mount -t tmpfs tmpfs '$REPO/.build' && ls -A '$REPO/.build'")" || return 1
  [ -z "$seen" ]
}
check "the build folder is hidden from the copy" hidden

"${TOPO[@]}" psql super -q -c "CREATE DATABASE $DB OWNER ${DB_USER:-db_user}" >/dev/null || { echo "cannot create $DB"; exit 1; }
files=$(ls Migrations/*.sql | wc -l)
first_migrate() { "$WORK/payments" migrate --write-dsn "$DSN" --read-dsn "$DSN" | tee "$WORK/migrate.out" | grep -q "applied $files migrations"; }
check "migrate from the copy applies all $files files of Migrations/" first_migrate
recorded() { [ "$("${TOPO[@]}" psql super -d "$DB" -tAc "SELECT count(*) FROM schema_migrations")" = "$files" ]; }
check "schema_migrations records $files versions" recorded
tables() { [ "$("${TOPO[@]}" psql super -d "$DB" -tAc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('payment_queue', 'payment_keys', 'ledger_entries', 'currencies')")" = 4 ]; }
check "the schema's tables exist" tables
second_migrate() { "$WORK/payments" migrate --write-dsn "$DSN" --read-dsn "$DSN" | grep -q "schema up to date"; }
check "a second migrate is a no-op" second_migrate

serve_start "$WORK/payments" "$PORT" "$WORK/serve.log" --no-workers --write-dsn "$DSN" --read-dsn "$DSN" >/dev/null 2>&1
openapi() { curl -fs "http://127.0.0.1:$PORT/openapi.yaml" | cmp -s - Sources/PaymentsHTTP/openapi.yaml; }
check "the copy serves openapi.yaml, identical to the source" openapi
post() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT/v1/payments" -H 'Content-Type: application/json' \
       -H 'Idempotency-Key: release-1' -d '{"amount_minor": 100, "currency": "EUR", "debtor": "a", "creditor": "b"}')" = 201 ]
}
check "the copy takes a payment into the fresh database" post
graceful() { serve_stop; }
check "serve stops gracefully (exit 0)" graceful

echo "release: $passed passed, $failed failed"
[ "$failed" = 0 ]
