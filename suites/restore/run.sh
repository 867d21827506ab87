#!/usr/bin/env bash
# The restore drill (suites/restore/scenarios.py), run by the suites' harness (suites/harness).
#   suites/restore/run.sh [--port-offset N] [SCENARIO...]     TOPOLOGY_HA=1: on the HA topology
# Needs a running topology and a built binary (BIN, default release).
cd "$(dirname "${BASH_SOURCE[0]}")/.." && PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m harness restore "$@"
