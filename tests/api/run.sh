#!/usr/bin/env bash
# API checks against a real `payments serve`: OpenAPI conformance of real responses,
# schemathesis fuzzing from the document (bounded), and JSON Lines fuzzing of enqueue.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
PORT_OFFSET="${PORT_OFFSET:-0}"
eval "$(scripts/topology --port-offset "$PORT_OFFSET" env)"
BIN="${BIN:-$REPO/.build/debug/payments}"
PORT=$((8080 + PORT_OFFSET + 70))
LOG="$(mktemp /tmp/payments-api.XXXXXX.log)"
"$BIN" migrate >/dev/null || exit 1
"$BIN" serve --port "$PORT" --no-workers >"$LOG" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$LOG"' EXIT
scripts/wait-http "http://127.0.0.1:$PORT/healthz" || { echo "serve did not start: $(tail -5 "$LOG")"; exit 1; }

rc=0
python3 tests/api/check_openapi.py "http://127.0.0.1:$PORT" Sources/payments/openapi.yaml || rc=1

echo "--- schemathesis (${FUZZ_EXAMPLES:-60} examples per operation)"
if schemathesis run "http://127.0.0.1:$PORT/openapi.yaml" --url "http://127.0.0.1:$PORT" \
     --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
     --max-examples "${FUZZ_EXAMPLES:-60}" --seed 42 --request-timeout 30 --no-color >"$LOG.st" 2>&1; then
  tail -15 "$LOG.st"; echo "schemathesis: 1 passed, 0 failed"
else
  tail -60 "$LOG.st"; echo "schemathesis: 0 passed, 1 failed"; rc=1
fi
rm -f "$LOG.st"
kill -0 "$PID" 2>/dev/null || { echo "serve crashed during fuzzing"; rc=1; }

python3 tests/api/fuzz_jsonl.py "$BIN" "${JSONL_ROUNDS:-25}" || rc=1
exit $rc
