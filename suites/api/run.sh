#!/usr/bin/env bash
# API checks against a real `payments serve`: OpenAPI conformance of real responses,
# schemathesis fuzzing from the document (bounded), and JSON Lines fuzzing of enqueue.
set -uo pipefail
PORT_OFFSET="${PORT_OFFSET:-0}"
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO"
eval "$("${TOPO[@]}" env)"
BIN="${BIN:-$REPO/.build/release/payments}"
PORT=$((8080 + PORT_OFFSET + 70))
LOG="$(mktemp /tmp/payments-api.XXXXXX.log)"
"$BIN" migrate >/dev/null || exit 1
serve_start "$BIN" "$PORT" "$LOG" --no-workers || exit 1
PID="$SERVE_PID"
trap 'serve_stop "$PID"; rm -f "$LOG"' EXIT

rc=0
python3 suites/api/check_openapi.py "http://127.0.0.1:$PORT" Sources/PaymentsHTTP/openapi.yaml || rc=1

echo "--- schemathesis (${FUZZ_EXAMPLES:-60} examples per operation)"
if schemathesis run "http://127.0.0.1:$PORT/openapi.yaml" --url "http://127.0.0.1:$PORT" \
     --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
     --exclude-path /v1/dashboard/events \
     --max-examples "${FUZZ_EXAMPLES:-60}" --seed 42 --request-timeout 30 --no-color >"$LOG.st" 2>&1; then
  tail -15 "$LOG.st"; echo "schemathesis: 1 passed, 0 failed"
else
  tail -60 "$LOG.st"; echo "schemathesis: 0 passed, 1 failed"; rc=1
fi
rm -f "$LOG.st"
kill -0 "$PID" 2>/dev/null || { echo "serve crashed during fuzzing"; rc=1; }

python3 suites/api/fuzz_jsonl.py "$BIN" "${JSONL_ROUNDS:-25}" || rc=1
exit $rc
