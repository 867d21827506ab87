#!/usr/bin/env bash
# The HA fault suite (suites/ha/scenarios.py), run by the suites' harness (suites/harness).
#   suites/ha/run.sh [--port-offset N] [SCENARIO...]    RUNS=n repeats each scenario
# Needs a running HA topology (scripts/topology --ha up) and a built binary (BIN, default release).
cd "$(dirname "${BASH_SOURCE[0]}")/.." && PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m harness ha "$@"
