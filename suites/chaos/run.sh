#!/usr/bin/env bash
# The seeded chaos suite (suites/chaos/scenarios.py), run by the suites' harness (suites/harness).
#   SEED=N (random by default)  MINUTES=M (2)  BIN=path/to/payments (default debug)  PORT_OFFSET (100)
[[ "${SEED:-0}" =~ ^[0-9]+$ ]] || { echo "chaos: SEED must be a whole number" >&2; exit 64; }
[[ "${MINUTES:-2}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "chaos: MINUTES must be a number" >&2; exit 64; }
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export PORT_OFFSET="${PORT_OFFSET:-100}" BIN="${BIN:-$PWD/../.build/debug/payments}"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m harness chaos "$@"
