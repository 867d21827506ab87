#!/usr/bin/env bash
# `payments bench --quick` end to end on the running topology: every phase reports its
# figures (a smoke test of the command; the figures of a debug build mean nothing). The
# full run is `make bench` on the release build. Prints "N passed, N failed" last.
#   suites/bench/run.sh [--port-offset N]
set -uo pipefail
PORT_OFFSET="${PORT_OFFSET:-0}"
if [ "${1:-}" = "--port-offset" ]; then PORT_OFFSET="$2"; shift 2; fi
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$REPO"
eval "$("${TOPO[@]}" env)"
BIN="${BIN:-$REPO/.build/debug/payments}"
WORK="$(mktemp -d /tmp/payments-bench-suite.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
rc=0
"$BIN" bench --quick --latency-seconds 5 --port-offset "$PORT_OFFSET" --json >"$WORK/report.json" 2>"$WORK/table.txt" || rc=$?
cat "$WORK/table.txt"
"$BIN" bench --phases ceilings --quick --port-offset "$PORT_OFFSET" --compare "$WORK/report.json" >"$WORK/compare.txt" 2>&1 || rc=$((rc + 1))
python3 - "$WORK/report.json" "$WORK/compare.txt" "$rc" <<'PY'
import json, sys
passed = failed = 0
def check(ok, what):
    global passed, failed
    print(("ok    " if ok else "FAIL  ") + what)
    passed, failed = passed + bool(ok), failed + (not ok)
check(sys.argv[3] == "0", f"both runs exit 0 (status sum {sys.argv[3]})")
try:
    report = json.load(open(sys.argv[1]))
except Exception as e:  # noqa: BLE001
    report = {"figures": []}
    check(False, f"--json prints a report: {e}")
phases = {f["phase"] for f in report["figures"]}
for phase in ["ceilings", "enqueue", "drain", "latency", "reads", "inflight"]:
    figures = [f for f in report["figures"] if f["phase"] == phase]
    # A stage can take less than the 0.1 ms figures are rounded to, and a count whose
    # target is 0 is 0; every other figure is > 0.
    check(figures and all(f["value"] > 0 or (f["value"] == 0 and (f["name"].strip().startswith("stage ") or f.get("target") == "0"))
                          for f in figures),
          f"phase {phase}: {len(figures)} figures, all measured")
    for f in figures:
        if f.get("target") == "0":
            check(f["value"] == 0, f"{f['name']}: {f['value']:g}")
check(report.get("commit") not in (None, "", "unknown"), f"the report names its commit: {report.get('commit')}")
compare = open(sys.argv[2]).read()
check("now / earlier" in compare and "x |" in compare, "--compare prints each figure's ratio to the earlier run")
print(f"bench: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
