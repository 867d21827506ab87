#!/usr/bin/env bash
# The fault suite (suites/faults/scenarios.py), run by the suites' harness (suites/harness).
#   suites/faults/run.sh [--port-offset N] [SCENARIO...]
# Needs a running topology (make test starts one) and a built binary (BIN, default release).
cd "$(dirname "${BASH_SOURCE[0]}")/.." && PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m harness faults "$@"
